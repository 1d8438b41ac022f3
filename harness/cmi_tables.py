"""Dev CMI, Γ and NCMI per trial and per arm, in each distribution space measured, and how NCMI
ranks against the dev metric among trials of the same seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness import significance
from harness.grouping import KEY, SETTING, completed, key_of
from harness.record import TrialRecord

SPACES = (("posterior", ""), ("features", "_features"))


def cmi_trials(records: list[TrialRecord]) -> pd.DataFrame:
    """Per completed trial and distribution space: headline dev metric (%), CMI, Gamma, NCMI (main dev split)."""
    rows = []
    for r in completed(records):
        m = r.headline
        for space, suffix in SPACES:
            if f"cmi{suffix}" in m:
                rows.append(
                    {
                        **key_of(r),
                        "space": space,
                        "metric": 100 * r.score(),
                        "cmi": m[f"cmi{suffix}"],
                        "gamma": m[f"gamma{suffix}"],
                        "ncmi": m[f"ncmi{suffix}"],
                    }
                )
    return pd.DataFrame(rows, columns=[*KEY, "space", "metric", "cmi", "gamma", "ncmi"])


def cmi_table(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds of CMI, Gamma and NCMI per setting, task, arm and space."""
    return (
        per_trial.groupby([*SETTING, "task", "objective", "space"], sort=False)
        .agg(cmi=("cmi", "mean"), gamma=("gamma", "mean"), ncmi=("ncmi", "mean"), n=("seed", "size"))
        .reset_index()
    )


PERMUTATIONS = 2000


def ncmi_metric(per_trial: pd.DataFrame) -> pd.DataFrame:
    """Within-seed rank correlation between dev NCMI and the dev metric over a setting's trials on a
    task: both ranked among the trials of the same seed (ties averaged) and centred per seed, then
    Pearson's r over all trials of seeds with two or more (a Spearman's rho that compares only
    trials sharing a seed, so seed-to-seed differences cannot make it). Its two-sided p permutes
    the metric within seeds (``PERMUTATIONS``, seeded): trials of one seed are not independent of
    each other, seeds are. NaN when fewer than 3 such trials or either is constant."""
    rng = np.random.default_rng(significance.SEED)
    rows = []
    for (suite, model, task, space), g in per_trial.groupby([*SETTING, "task", "space"], sort=False):
        g = g[g.groupby("seed")["seed"].transform("size") >= 2]
        rho = p = np.nan
        if len(g) >= 3 and g["metric"].nunique() > 1 and g["ncmi"].nunique() > 1:
            x = _centred_ranks(g["ncmi"], g["seed"])
            y = _centred_ranks(g["metric"], g["seed"])
            if x.any() and y.any():
                rho = float(x @ y / np.sqrt((x @ x) * (y @ y)))
                blocks = [np.flatnonzero(g["seed"].to_numpy() == s) for s in g["seed"].unique()]
                hits = 0
                for _ in range(PERMUTATIONS):
                    yp = y.copy()
                    for b in blocks:
                        yp[b] = y[rng.permutation(b)]
                    hits += abs(x @ yp / np.sqrt((x @ x) * (yp @ yp))) >= abs(rho) - 1e-12
                p = (1 + hits) / (1 + PERMUTATIONS)
        rows.append(
            {
                "suite": suite,
                "model": model,
                "task": task,
                "space": space,
                "n": len(g),
                "seeds": g["seed"].nunique(),
                "rho": rho,
                "p": p,
            }
        )
    cols = [*SETTING, "task", "space", "n", "seeds", "rho", "p"]
    return pd.DataFrame(rows, columns=cols).astype({"rho": float, "p": float})


def _centred_ranks(values: pd.Series, seeds: pd.Series) -> np.ndarray:
    ranks = values.groupby(seeds.to_numpy()).rank().to_numpy(dtype=float)
    return ranks - pd.Series(ranks).groupby(seeds.to_numpy()).transform("mean").to_numpy()

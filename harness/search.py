"""A hyper-parameter search's definition: the search space, the algorithm and the scheduler (the
``harness tune`` command itself is harness.tune). The executor (harness.ray_executor.run_search)
sees a ``Search`` only through ``domains``, ``total``, ``tune_options`` and ``label``.

The space: ``KEY=KIND:ARGS`` strings or a YAML file, checked against the trial config before
anything runs. KEY is a trial setting (``lr``, ``batch_size``, ``epochs``, ``warmup_ratio``,
``weight_decay``, ``max_seq_length``, ``max_train_samples``, ``seed``) or ``OBJECTIVE.HPARAM`` of
the tuned objective. KIND:ARGS is one of

* ``uniform:LO:HI``, ``loguniform:LO:HI`` (0 < LO) -- floats;
* ``randint:LO:HI`` -- integers LO..HI, both included;
* ``choice:A,B,...`` -- sampled; ``grid:A,B,...`` -- every value, each with ``--num-samples`` draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from harness.config import TrialConfig, yaml_mapping
from harness.errors import HarnessError
from harness.record import TrialRecord

SETTINGS = ("lr", "batch_size", "epochs", "warmup_ratio", "weight_decay", "max_seq_length", "max_train_samples", "seed")
WHOLE = ("seed", "epochs", "batch_size", "max_seq_length", "max_train_samples")
KINDS = ("uniform", "loguniform", "randint", "choice", "grid")
EXAMPLE = "e.g. lr=loguniform:1e-5:1e-4 or cmi_min.lambda=choice:0.01,0.1,0.5"


@dataclass(frozen=True)
class Dimension:
    key: str  # a TrialConfig field, or "objective.hparam"
    kind: str
    values: tuple[Any, ...]  # (LO, HI) for uniform/loguniform/randint; the listed values otherwise

    def tune_domain(self):
        from ray import tune

        lo, hi = self.values[0], self.values[-1]
        return {
            "uniform": lambda: tune.uniform(lo, hi),
            "loguniform": lambda: tune.loguniform(lo, hi),
            "randint": lambda: tune.randint(lo, hi + 1),  # Tune's upper bound is exclusive
            "choice": lambda: tune.choice(list(self.values)),
            "grid": lambda: tune.grid_search(list(self.values)),
        }[self.kind]()


def _scalar(text: str) -> Any:
    """``3`` -> 3, ``2e-3`` -> 0.002, ``true`` -> True, anything else stays a string."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_dimension(key: str, spec: Any, where: str = "--search") -> Dimension:
    """One dimension from ``KIND:ARGS`` (or, from YAML, a list: a choice)."""
    key = key.strip().replace("-", "_") if "." not in key else key.strip()
    shown = f"{where} {key}={spec}"
    if isinstance(spec, list):
        if not spec:
            raise HarnessError(f"{shown}: the list is empty; give at least one value")
        return Dimension(key, "choice", tuple(spec))
    kind, _, args = str(spec).partition(":")
    if kind not in KINDS or not args:
        raise HarnessError(f"{shown}: write KEY=KIND:ARGS with KIND one of {', '.join(KINDS)}; {EXAMPLE}")
    if kind in ("choice", "grid"):
        values = tuple(_scalar(v.strip()) for v in args.split(",") if v.strip())
        if not values:
            raise HarnessError(f"{shown}: list at least one value, e.g. {key}={kind}:0.01,0.1")
        return Dimension(key, kind, values)
    bounds = args.split(":")
    number = int if kind == "randint" else float
    try:
        lo, hi = (number(b) for b in bounds) if len(bounds) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        raise HarnessError(f"{shown}: {kind} needs two {number.__name__} bounds LO:HI, e.g. {key}={kind}:1:4")
    if not lo < hi:
        raise HarnessError(f"{shown}: LO must be below HI")
    if kind == "loguniform" and lo <= 0:
        raise HarnessError(f"{shown}: loguniform needs 0 < LO, e.g. {key}=loguniform:1e-5:1e-4")
    return Dimension(key, kind, (lo, hi))


def parse_space(items: list[str], file: str | None = None) -> list[Dimension]:
    """``--search KEY=SPEC`` items, after those of a YAML file ({key: spec} or {objective: {hparam: spec}})."""
    dims: dict[str, Dimension] = {}
    if file:
        for key, spec in yaml_mapping(file, "--search-file", f"a mapping of keys to specs; {EXAMPLE}").items():
            nested = spec.items() if isinstance(spec, dict) else [(None, spec)]
            for sub, value in nested:
                full = f"{key}.{sub}" if sub is not None else str(key)
                dims[full] = parse_dimension(full, value, f"--search-file {file}:")
    for item in items:
        key, eq, spec = item.partition("=")
        if not eq or not key.strip():
            raise HarnessError(f"--search {item!r}: write KEY=KIND:ARGS, {EXAMPLE}")
        dim = parse_dimension(key, spec)
        dims[dim.key] = dim
    if not dims:
        raise HarnessError(f"nothing to search: give --search KEY=KIND:ARGS or --search-file FILE; {EXAMPLE}")
    return list(dims.values())


def check(dims: list[Dimension], base: TrialConfig, objective_cls) -> list[Dimension]:
    """Refuses keys that do not exist and values the trial would refuse; returns the dimensions
    with objective hyper-parameter values converted to their declared types."""
    checked = []
    for dim in dims:
        owner, dot, name = dim.key.partition(".")
        where = f"--search {dim.key}"
        if dot and owner != base.objective:
            raise HarnessError(f"{where}: {owner!r} is not the tuned objective {base.objective!r}")
        if not dot and dim.key not in SETTINGS:
            raise HarnessError(
                f"{where}: unknown key; searchable: {', '.join(SETTINGS)}, or {base.objective}.HPARAM "
                f"(see `harness list --details {base.objective}`)"
            )
        if dim.key in WHOLE and dim.kind in ("uniform", "loguniform"):
            raise HarnessError(f"{where}: takes whole numbers; use randint, choice or grid")
        values = []
        for value in dim.values:  # the bounds, or every listed value: checking them checks all
            try:
                if dot:
                    value = objective_cls.resolve_hparams({name: value})[name]
                base.with_values({dim.key: value})
            except (HarnessError, TypeError) as exc:
                raise HarnessError(f"{where}: value {value!r}: {exc}") from None
            if dot and objective_cls.teacher_stages(
                objective_cls.resolve_hparams({name: value})
            ) != objective_cls.teacher_stages(objective_cls.resolve_hparams({})):
                raise HarnessError(f"{where}: changes the teacher; tune searches the student's settings only")
            values.append(value)
        if dot and dim.kind in ("choice", "grid"):
            dim = replace(dim, values=tuple(values))
        checked.append(dim)
    if base.teacher and any(d.key == "seed" for d in checked):
        raise HarnessError("--search seed: this objective's teacher is trained for --seed only; search other keys")
    return checked


def grid_only(dims: list[Dimension]) -> list[Dimension]:
    """For ``--search-alg grid``: every dimension must list its values."""
    for dim in dims:
        if dim.kind in ("uniform", "loguniform", "randint"):
            raise HarnessError(
                f"--search {dim.key}: grid search needs listed values, e.g. {dim.key}=grid:"
                f"{dim.values[0]},{dim.values[-1]}"
            )
    return [replace(d, kind="grid") for d in dims]


def values_of(cfg: TrialConfig, keys: list[str]) -> dict[str, Any]:
    """The searched keys' values in a trial config (the inverse of ``apply``)."""
    return {k: cfg.objective_args[k.partition(".")[2]] if "." in k else getattr(cfg, k) for k in keys}


def label(values: dict[str, Any]) -> str:
    """``lr=3.2e-05 cmi_min.lambda=0.1``: a sampled point, short."""
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())


@dataclass(frozen=True)
class Search:
    """What a search draws and how: its dimensions, the dev metric it maximises, the algorithm
    (random | grid | optuna) seeded with ``seed``, the scheduler (fifo | asha) and the draws."""

    dims: list[Dimension]
    metric: str
    algorithm: str = "random"
    scheduler: str = "fifo"
    num_samples: int = 8  # unless the space is all grid: then 1 repeat of each point
    seed: int = 0

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dims]

    def domains(self) -> dict[str, Any]:
        """Ray Tune's domain of each searched key."""
        dims = grid_only(self.dims) if self.algorithm == "grid" else self.dims
        return {d.key: d.tune_domain() for d in dims}

    def total(self) -> int:
        """Tune trials: ``num_samples`` draws of every grid point."""
        return math.prod(len(d.values) for d in self.dims if d.kind == "grid" or self.algorithm == "grid") * (
            self.num_samples
        )

    def tune_options(self, epochs: int, limit: int) -> dict[str, Any]:
        """``tune.TuneConfig`` arguments: metric, searcher and scheduler; ``limit`` trials at once."""
        options: dict[str, Any] = {"metric": self.metric, "mode": "max", "num_samples": self.num_samples}
        if self.algorithm == "optuna":
            options["search_alg"] = _optuna(self.seed)
        else:
            from ray.tune.search.basic_variant import BasicVariantGenerator

            # the same samples every time; max_concurrent here, as Tune ignores it for a given generator
            options["search_alg"] = BasicVariantGenerator(max_concurrent=limit, random_state=self.seed)
            options["max_concurrent_trials"] = None
        if self.scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            # stop_last_trials=False: a trial that reaches the last epoch ends by itself, records and all
            options["scheduler"] = ASHAScheduler(
                max_t=epochs, grace_period=1, reduction_factor=2, stop_last_trials=False
            )
        return options

    def label(self, cfg: TrialConfig) -> str:
        """``sentiment ce lr=0.002``: a trial, by what the search chose."""
        return f"{cfg.task} {cfg.objective} " + label(values_of(cfg, self.keys))

    def best(self, records: list[TrialRecord]) -> TrialRecord | None:
        """The completed trial with the highest ``metric`` on the first dev split at its last epoch."""
        return max((r for r in records if r.completed), key=lambda r: r.score(self.metric), default=None)

    def to_dict(self) -> dict[str, Any]:
        """As run.json keeps it (``space`` for readers, ``dimensions`` for ``--resume``)."""
        return {
            "space": {d.key: f"{d.kind}:{','.join(map(str, d.values))}" for d in self.dims},
            "dimensions": [[d.key, d.kind, list(d.values)] for d in self.dims],
            "metric": self.metric,
            "algorithm": self.algorithm,
            "scheduler": self.scheduler,
            "num_samples": self.num_samples,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Search:
        dims = [Dimension(key, kind, tuple(values)) for key, kind, values in d["dimensions"]]
        fields = ("metric", "algorithm", "scheduler", "num_samples", "seed")
        return cls(dims, **{k: d[k] for k in fields})


def _optuna(seed: int):
    try:
        import optuna
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise HarnessError(
            "--search-alg optuna needs Optuna: pip install 'cmi-harness[optuna]' (or use random or grid)"
        ) from None
    return OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed))

"""The comparison report from trial records the test writes, with numbers worked out by hand."""

import html.parser
import json

import numpy as np
import pandas as pd
import pytest

from harness.cmi_tables import ncmi_metric
from harness.report import build
from harness.results import write_json, write_predictions
from harness.trainer import Predictions

LABELS = np.array([0, 1] * 50)  # 100 dev examples


def probs_with_accuracy(acc: float, seed: int) -> np.ndarray:
    """Probabilities whose argmax is right on exactly round(acc * 100) examples."""
    rng = np.random.default_rng(seed)
    right = np.zeros(100, bool)
    right[rng.permutation(100)[: round(acc * 100)]] = True
    pred = np.where(right, LABELS, 1 - LABELS)
    p = np.full((100, 2), 0.2)
    p[np.arange(100), pred] = 0.8
    return p


def add_trial(
    run_dir,
    task,
    objective,
    seed,
    acc=None,
    status="completed",
    error=None,
    model="m",
    metric="accuracy",
    cmi=None,
    teacher=None,
    compare_to=None,
    arm=None,
):
    trial_id = f"{task}-{arm or objective}-s{seed}"
    if cmi is None:  # by default cmi_min halves its seed's CMI, so its manipulation check holds
        cmi = 0.1 * seed * (0.5 if objective == "cmi_min" else 1)
    config = {"suite": "glue", "model": model, "task": task, "objective": objective, "seed": seed, "teacher": teacher}
    record = {
        "trial_id": trial_id,
        "status": status,
        "config": config,
        "arm": arm,
        "compare_to": compare_to if compare_to is not None else [] if objective == "ce" else ["ce"],
    }
    if status == "completed":
        probs = probs_with_accuracy(acc, seed)
        record.update(
            primary_metric=metric,
            predictions="dev_predictions.safetensors",
            final={"validation": {metric: acc, "cmi": cmi, "gamma": 1.0, "ncmi": cmi}},
            epochs=[{"epoch": 1, "train_loss": 0.5, "validation": {metric: acc}}],
        )
        write_predictions(
            run_dir / "trials" / trial_id / "dev_predictions.safetensors",
            {"validation": Predictions(probs, LABELS, np.arange(100))},
        )
    else:
        record["error"] = error
    write_json(run_dir / "trials" / trial_id / "record.json", record)


@pytest.fixture
def run_dir(tmp_path):
    d = tmp_path / "run"
    # rte: ce 75, 85; cmi_min 84, 96 -> means 80 vs 90, delta +10; chance (50/50 labels) is 50
    add_trial(d, "rte", "ce", 1, 0.75)
    add_trial(d, "rte", "ce", 2, 0.85)
    add_trial(d, "rte", "cmi_min", 1, 0.84)
    add_trial(d, "rte", "cmi_min", 2, 0.96)
    # wnli: ce 56 (seed 1) and a failed seed 2; cmi_min 50 -> delta -6; neither clears chance
    add_trial(d, "wnli", "ce", 1, 0.56)
    add_trial(d, "wnli", "ce", 2, status="failed", error="non-finite loss nan at epoch 1, step 3")
    add_trial(d, "wnli", "cmi_min", 1, 0.50)
    return d


def test_means_stds_deltas_wins_and_averages_by_hand(run_dir):
    t = build([run_dir]).tables
    res = t["results"].set_index(["row", "objective"])
    assert res.loc[("rte acc", "ce"), "mean"] == pytest.approx(80.0)
    assert res.loc[("rte acc", "ce"), "std"] == pytest.approx(np.std([75, 85], ddof=1))  # 7.0711
    assert res.loc[("rte acc", "cmi_min"), "mean"] == pytest.approx(90.0)
    assert res.loc[("wnli acc", "ce"), "n"] == 1  # the failed seed is not averaged in ...
    assert res.loc[("average", "ce"), "mean"] == pytest.approx((80 + 56) / 2)
    assert res.loc[("average (no WNLI)", "ce"), "mean"] == pytest.approx(80.0)
    assert res.loc[("average", "cmi_min"), "mean"] == pytest.approx((90 + 50) / 2)
    deltas = t["deltas"].set_index("row")["delta"]
    assert deltas["rte acc"] == pytest.approx(10.0) and deltas["wnli acc"] == pytest.approx(-6.0)
    chance = t["chance"].set_index("row")
    assert chance.loc["rte acc", "chance"] == 50.0 and chance.loc["wnli acc", "constant"] == "always 0"
    learned = t["learned"].set_index(["task", "objective"])
    assert learned.loc[("rte", "ce"), "seeds_learned"] == 2 and learned.loc[("rte", "cmi_min"), "learned"]
    assert not learned.loc[("wnli", "ce"), "learned"] and not learned.loc[("wnli", "cmi_min"), "learned"]
    sig = t["significance"].set_index("task")
    assert sig.loc["rte", "design"] == "paired seeds" and sig.loc["rte", "seeds"] == "2 vs 2"
    assert "fewer than 3 seeds" in sig.loc["rte", "note"] and "not above chance" in sig.loc["wnli", "note"]
    assert sig.loc["wnli", "design"] == "examples only"  # one seed a side
    (win,) = t["wins"].itertuples()
    assert (win.better, win.tasks, win.left_out) == (1, 1, "wnli (an arm not above chance)")
    assert win.summary.startswith("cmi_min better than ce on 1 of 1 tasks, significantly on ")


def test_failed_trials_are_listed_with_their_reason(run_dir):
    report = build([run_dir])
    trials = report.tables["trials"].set_index("trial_id")
    assert trials.loc["wnli-ce-s2", "status"] == "failed"
    assert "non-finite loss" in trials.loc["wnli-ce-s2", "reason"]
    from harness.render import sections

    titles = dict(sections(report))
    assert "wnli-ce-s2" in titles["Trials not completed"].to_string()  # ... but shown
    assert report.wide("glue", "m").loc["wnli acc", "ce"] == "56.00 (n=1, 0/1 above chance)"


class _Tables(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.images = 0, 0

    def handle_starttag(self, tag, attrs):
        self.tables += tag == "table"
        self.images += tag == "img" and dict(attrs)["src"].startswith("data:image/png;base64,")


def test_files_are_written_complete_and_regenerate_identically(cli, run_dir):
    code, out, err = cli("report", str(run_dir))
    assert code == 0, err
    rep = run_dir / "report"
    files = {p: p.read_bytes() for p in rep.rglob("*") if p.is_file()}
    from harness.render import sections

    parser = _Tables()
    parser.feed((rep / "report.html").read_text())
    targets = {"cmi_min": ("self", -1)}  # what the installed plugin declares
    assert parser.tables == len(sections(build([run_dir], targets=targets))) and parser.images == 3
    for name in ("metric_vs_ncmi.png", "deltas.png", "training_curves.png"):
        assert (rep / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((rep / "report.json").read_text())
    assert set(doc["tables"]) >= {"results", "deltas", "significance", "cmi", "trials", "reference"}
    assert (rep / "tables" / "results.csv").exists() and "| rte acc |" in (rep / "report.md").read_text()
    for p in files:
        p.unlink()
    assert cli("report", str(run_dir))[0] == 0
    assert {p: p.read_bytes() for p in rep.rglob("*") if p.is_file()} == files
    assert "cmi_min better than ce on 1 of 1 tasks" in out and "left out" in out


def test_published_numbers_only_beside_a_matching_model(tmp_path):
    d = tmp_path / "run"
    add_trial(d, "rte", "ce", 1, 0.66, model="bert-base")
    wide = build([d]).wide("glue", "bert-base")
    (col,) = [c for c in wide.columns if c.startswith("published")]
    assert wide.loc["rte acc", col] == "69.3" and "Sanh et al. 2019" in col
    add_trial(d, "rte", "ce", 1, 0.66, model="minilm-l6")
    assert not any(c.startswith("published") for c in build([d]).wide("glue", "minilm-l6").columns)


REPORTER = """
from harness import hookimpl
from harness import Reporter

def write(report, out):
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.txt"
    path.write_text(str(len(report.tables["results"])))
    return [path]

@hookimpl
def harness_reporters():
    return [Reporter("rowcount", "number of result rows", write)]
"""


def test_a_plugin_adds_an_output_format(cli, run_dir, tmp_path, monkeypatch):
    (tmp_path / "my_reporter.py").write_text(REPORTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = cli("--plugin", "my_reporter", "report", str(run_dir), "--formats", "rowcount,markdown")
    assert code == 0, err
    assert (run_dir / "report" / "rows.txt").read_text() == "8"  # (2 tasks + 2 averages) x 2 objectives
    assert not (run_dir / "report" / "report.html").exists()


def test_report_of_a_directory_without_trials_is_refused(cli, tmp_path):
    code, _, err = cli("report", str(tmp_path))
    assert code == 2 and "holds no trials/ directory" in err


def test_a_damaged_or_newer_record_is_refused_by_path(cli, run_dir):
    path = run_dir / "trials" / "rte-ce-s1" / "record.json"
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # cut short
    code, _, err = cli("report", str(run_dir))
    assert code == 2 and str(path) in err and len(err.strip().splitlines()) == 1
    path.write_text(text.replace('"trial_id"', '"schema": 99, "trial_id"', 1))
    code, _, err = cli("report", str(run_dir))
    assert code == 2 and "schema 99 is newer" in err and str(path) in err


def test_distillation_teachers_side_by_side(tmp_path):
    d = tmp_path / "run"
    for seed, (control, cmi_max) in enumerate([(0.80, 0.78), (0.90, 0.82)], start=1):
        for name, acc, label in (("control", control, "ce→ce"), ("cmimax", cmi_max, "ce→cmi_max[centroids=exact]")):
            add_trial(d, "rte", f"teacher-{name}", seed, acc, model="big")
            path = d / "trials" / f"rte-teacher-{name}-s{seed}" / "record.json"
            r = json.loads(path.read_text())
            write_json(path, {**r, "arm": label, "compare_to": []})
        for student, teacher in (("kd", "control"), ("cmi_max_kd", "cmimax")):
            add_trial(d, "rte", student, seed, 0.7)
            path = d / "trials" / f"rte-{student}-s{seed}" / "record.json"
            r = json.loads(path.read_text())
            r["config"]["teacher"] = f"rte-teacher-{teacher}-s{seed}"
            write_json(path, r)
    t = build([d]).tables["teachers"].set_index("objective")
    assert t.loc["kd", "teacher"] == "ce→ce" and t.loc["kd", "mean"] == pytest.approx(85.0)
    assert t.loc["cmi_max_kd", "teacher"] == "ce→cmi_max[centroids=exact]"
    assert t.loc["cmi_max_kd", "mean"] == pytest.approx(80.0) and t.loc["cmi_max_kd", "n"] == 2
    assert t.loc["cmi_max_kd", "cmi"] == pytest.approx(0.15)  # seeds 1, 2: 0.1 * seed, averaged


def test_runs_whose_trials_differ_in_more_than_the_seed_are_not_merged(cli, tmp_path):
    for name, lr in (("a", 1e-4), ("b", 3e-4)):
        add_trial(tmp_path / name, "rte", "ce", 1 if name == "a" else 2, 0.7)
        path = tmp_path / name / "trials" / f"rte-ce-s{1 if name == 'a' else 2}" / "record.json"
        record = json.loads(path.read_text())
        record["config"]["lr"] = lr
        write_json(path, record)
    code, _, err = cli("report", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "r"))
    assert code == 2 and "rte-ce-s1 and rte-ce-s2" in err and "differ in lr, not only in their seed" in err
    # --supersede: rte from the last run given, the other run's rte trials left out and named
    add_trial(tmp_path / "a", "wnli", "ce", 1, 0.5)
    code, _, err = cli(
        "report", str(tmp_path / "a"), str(tmp_path / "b"), "--output", str(tmp_path / "r"), "--supersede"
    )
    assert code == 0, err
    trials = json.loads((tmp_path / "r" / "report.json").read_text())["tables"]["trials"]
    assert sorted(t["trial_id"] for t in trials) == ["rte-ce-s2", "wnli-ce-s1"]
    note = f"rte: trials from {tmp_path / 'b'}, superseding those in {tmp_path / 'a'} (--supersede)"
    assert note in (tmp_path / "r" / "report.md").read_text()


def test_ncmi_against_the_metric_is_a_within_seed_rank_correlation_worked_by_hand(run_dir):
    trials = pd.DataFrame(
        {
            "suite": "glue",
            "model": "m",
            "task": ["a"] * 6 + ["chance"] * 3 + ["seeds"] * 4,
            "space": "posterior",
            "seed": [1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 2, 2],
            "ncmi": [0.1, 0.2, 0.3, 0.5, 0.6, 0.7, 0.1, 0.2, 0.3, 0.1, 0.2, 0.9, 1.0],
            "metric": [90, 80, 70, 95, 85, 60, 0, 0, 0, 70, 80, 90, 95],
        }
    )
    table = ncmi_metric(trials).set_index("task")
    # a: within each seed NCMI ranks 1 2 3 against metric ranks 3 2 1: rho = -1; pooled over seeds the
    # seed-2 trials (higher NCMI) would pull it elsewhere. Of the 6 x 6 within-seed permutations, 2 reach
    # |rho| = 1, so p is about 2/36
    assert table.loc["a", "rho"] == pytest.approx(-1.0) and table.loc["a", "seeds"] == 2
    assert table.loc["a", "p"] == pytest.approx(2 / 36, abs=0.02)
    assert np.isnan(table.loc["chance", "rho"]) and table.loc["chance", "n"] == 3  # every trial at MCC 0
    # seeds: pooled, higher NCMI goes with higher accuracy (seed 2 is better at everything); within each
    # seed it goes up too: ranks (1, 2) against (1, 2) in both: rho = +1
    assert table.loc["seeds", "rho"] == pytest.approx(1.0)
    built = build([run_dir]).tables["ncmi_metric"].set_index("task")
    assert np.isnan(built.loc["wnli", "rho"])  # wnli: no seed with two completed trials


TARGETS = {"cmi_min": ("self", -1), "cmi_max_kd": ("teacher", 1), "kd": None, "ce": None}


def test_manipulation_checks_by_hand_and_a_failed_one_leaves_k_of_n(tmp_path):
    """rte: ce CMI 0.20, 0.40 and cmi_min 0.10, 0.36 -> ratios 0.5, 0.9, mean 0.70: holds. mrpc: 0.20, 0.40
    against 0.19, 0.39 -> 0.95, 0.975: moved under 10%, fails, and mrpc leaves 'better on k of n'."""
    d = tmp_path / "run"
    for task, ce, cm in (("rte", (0.20, 0.40), (0.10, 0.36)), ("mrpc", (0.20, 0.40), (0.19, 0.39))):
        for seed in (1, 2):
            add_trial(d, task, "ce", seed, 0.75, cmi=ce[seed - 1])
            add_trial(d, task, "cmi_min", seed, 0.85, cmi=cm[seed - 1])
    t = build([d], targets=TARGETS).tables
    m = t["manipulation"].set_index("task")
    assert m.loc["rte", "ratio"] == pytest.approx(0.70) and m.loc["rte", "ratio_min"] == pytest.approx(0.5)
    assert bool(m.loc["rte", "holds"]) and m.loc["rte", "control"] == "ce" and m.loc["rte", "seeds"] == 2
    assert m.loc["mrpc", "ratio"] == pytest.approx(0.9625) and not m.loc["mrpc", "holds"]
    assert "not applied" in m.loc["mrpc", "note"] and m.loc["rte", "target"] == "dev CMI (posterior) down"
    (win,) = t["wins"].itertuples()
    assert (win.better, win.tasks, win.left_out) == (1, 1, "mrpc (CMI not moved)")
    assert build([d]).tables["manipulation"].empty  # no plugin declared a target: nothing to check


def test_a_distillation_arm_is_checked_on_its_teacher_against_the_control_teacher(tmp_path):
    """cmi_max_kd's teachers CMI 0.30, 0.33 against kd's teachers 0.20, 0.30 -> 1.5, 1.1: mean 1.30, holds;
    the check is the arm's, whichever baseline (ce has no teacher, kd has)."""
    d = tmp_path / "run"
    for seed, (tk, tm) in zip((1, 2), ((0.20, 0.30), (0.30, 0.33)), strict=True):
        add_trial(d, "rte", "ce", seed, 0.80, model="t", cmi=tk, arm="ce→ce", compare_to=[])
        add_trial(d, "rte", "cmi_max", seed, 0.80, model="t", cmi=tm, arm="ce→cmi_max", compare_to=[])
        add_trial(d, "rte", "ce", seed, 0.70, model="s")
        add_trial(d, "rte", "kd", seed, 0.72, model="s", teacher=f"rte-ce→ce-s{seed}")
        add_trial(
            d, "rte", "cmi_max_kd", seed, 0.74, model="s", teacher=f"rte-ce→cmi_max-s{seed}", compare_to=["ce", "kd"]
        )
    m = build([d], targets=TARGETS).tables["manipulation"]
    (row,) = m.itertuples()
    assert (row.model, row.objective, row.control) == ("s", "cmi_max_kd", "ce→ce")
    assert row.ratio == pytest.approx(1.30) and row.holds and row.target == "teacher dev CMI (posterior) up"

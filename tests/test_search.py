"""Search spaces of `harness tune`: parsing, checking against the trial config, and the best-config file."""

import json

import pytest
import yaml

from harness import search
from harness.planner import make_plan
from harness.tune import best_config
from tests.helpers import SMALL_DATA_FLAGS


def test_specs_parse_to_typed_dimensions(tmp_path):
    dims = search.parse_space(
        ["lr=loguniform:1e-5:1e-4", "cmi_min.lambda=choice:0.01,0.1,0.5", "seed=grid:1,2", "batch-size=randint:8:16"]
    )
    by_key = {d.key: d for d in dims}
    assert by_key["lr"] == search.Dimension("lr", "loguniform", (1e-5, 1e-4))
    assert by_key["cmi_min.lambda"].values == (0.01, 0.1, 0.5)
    assert by_key["seed"] == search.Dimension("seed", "grid", (1, 2))
    assert by_key["batch_size"] == search.Dimension("batch_size", "randint", (8, 16))
    file = tmp_path / "space.yaml"
    file.write_text("lr: uniform:1e-5:2e-5\ncmi_min:\n  centroids: [ema, epoch]\n")
    dims = search.parse_space(["lr=choice:3e-5"], str(file))  # the command line wins over the file
    assert {d.key: (d.kind, d.values) for d in dims} == {
        "lr": ("choice", (3e-5,)),
        "cmi_min.centroids": ("choice", ("ema", "epoch")),
    }


def test_tune_domains_cover_the_stated_ranges():
    from ray.tune.search.sample import Categorical, Float, Integer

    lr = search.Dimension("lr", "loguniform", (1e-5, 1e-4)).tune_domain()
    assert isinstance(lr, Float) and (lr.lower, lr.upper) == (1e-5, 1e-4)
    ints = search.Dimension("seed", "randint", (1, 3)).tune_domain()
    assert isinstance(ints, Integer) and (ints.lower, ints.upper) == (1, 4)  # HI is included
    assert isinstance(search.Dimension("lr", "choice", (1, 2)).tune_domain(), Categorical)
    assert search.Dimension("lr", "grid", (1, 2)).tune_domain() == {"grid_search": [1, 2]}


def _base(loaded, objective="cmi_min"):
    return make_plan(loaded, "smoke", ["sentiment"], [objective], "tiny", [1], check_model=False).trials[-1]


def test_check_converts_objective_values_and_apply_inverts_values_of(loaded):
    base = _base(loaded)
    (dim,) = search.check(
        [search.Dimension("cmi_min.lambda", "choice", (0, 1))], base, loaded.objectives.get("cmi_min")
    )
    assert dim.values == (0.0, 1.0) and all(isinstance(v, float) for v in dim.values)
    cfg = base.with_values({"lr": 3e-5, "cmi_min.lambda": 0.5, "seed": 7})
    assert (cfg.lr, cfg.objective_args["lambda"], cfg.seed) == (3e-5, 0.5, 7)
    assert cfg.objective_args["beta"] == base.objective_args["beta"]  # the rest is the base's
    assert search.values_of(cfg, ["lr", "cmi_min.lambda"]) == {"lr": 3e-5, "cmi_min.lambda": 0.5}
    assert search.label({"lr": 3.21e-5, "cmi_min.centroids": "ema"}) == "lr=3.21e-05 cmi_min.centroids=ema"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("lr=loguniform:1e-4", "loguniform needs two float bounds LO:HI"),
        ("lr=loguniform:0:1e-4", "loguniform needs 0 < LO"),
        ("lr=uniform:2e-5:1e-5", "LO must be below HI"),
        ("lr=normal:1:2", "KIND one of uniform, loguniform, randint, choice, grid"),
        ("lr", "write KEY=KIND:ARGS"),
        ("lr=choice:", "write KEY=KIND:ARGS"),
        ("lr=choice:-1e-5,1e-5", "value -1e-05: --lr -1e-05: must be positive"),
        ("epochs=uniform:1:3", "takes whole numbers; use randint, choice or grid"),
        ("dropout=choice:0.1", "unknown key; searchable: lr, batch_size"),
        ("ce.label_smoothing=choice:0.1", "'ce' is not the tuned objective 'cmi_min'"),
        ("cmi_min.lamda=choice:0.1", "has no hyper-parameter 'lamda'. Did you mean 'lambda'?"),
        ("cmi_min.lambda=choice:-1", "--search cmi_min.lambda: value -1: cmi_min.lambda=-1: must be >= 0"),
    ],
)
def test_bad_search_specs_get_one_line_before_anything_runs(cli, tmp_path, spec, message):
    code, _, err = cli(
        "tune", "--tasks", "sentiment", "--objectives", "cmi_min", "--search", spec, "--output-dir", str(tmp_path)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--search", "lr=loguniform:1e-5:1e-4", "--search-alg", "grid"], "grid search needs listed values"),
        (["--search", "lr=grid:1e-5,1e-4", "--search-alg", "optuna"], "optuna samples every dimension"),
        (["--search", "lr=grid:1e-5,1e-4", "--metric", "f1"], "--metric f1: sentiment reports accuracy"),
        (["--tasks", "sentiment,nli", "--search", "lr=grid:1e-5"], "searches one task at a time"),
        ([], "nothing to search"),
    ],
)
def test_bad_search_settings_get_one_line(cli, tmp_path, args, message):
    base = ["tune", "--tasks", "sentiment", "--output-dir", str(tmp_path)]
    code, _, err = cli(*base, *args)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert message in err


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cmi_max_kd.teacher_lambda=choice:0.5", "changes the teacher; tune searches the student's settings only"),
        ("seed=grid:1,2", "teacher is trained for --seed only"),
    ],
)
def test_a_search_may_not_change_the_teacher(cli, tmp_path, spec, message):
    args = ["--objectives", "cmi_max_kd", "--teacher-model", "tiny", "--search", spec, "--output-dir", str(tmp_path)]
    code, _, err = cli("tune", "--tasks", "sentiment", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_search_file_that_is_not_a_mapping_is_refused(cli, tmp_path):
    (tmp_path / "space.yaml").write_text("- lr\n")
    code, _, err = cli("tune", "--tasks", "sentiment", "--search-file", str(tmp_path / "space.yaml"))
    assert code == 2 and "expected a mapping of keys to specs" in err


def test_best_config_is_a_run_config_file_that_reruns_the_trial(loaded, cli, tmp_path):
    best = _base(loaded).with_values({"lr": 3e-3, "cmi_min.lambda": 0.5})
    (tmp_path / "best.yaml").write_text(yaml.safe_dump(best_config(best, None)))
    out = tmp_path / "runs"
    args = ["--config", str(tmp_path / "best.yaml"), "--epochs", "1", *SMALL_DATA_FLAGS]
    code, _, err = cli("run", *args, "--output-dir", str(out))
    assert code == 0, err
    (record,) = [yaml.safe_load(p.read_text()) for p in out.glob("*/trials/*/record.json")]
    assert record["config"]["lr"] == 3e-3 and record["config"]["objective_args"]["lambda"] == 0.5
    assert record["config"]["seed"] == 1 and record["config"]["epochs"] == 1  # the command line wins


@pytest.mark.parametrize("command", [["report"], ["run", "--resume"]])
def test_a_tune_run_is_neither_reported_nor_resumed_as_a_comparison(cli, tmp_path, command):
    run_dir = tmp_path / "20261129-000000-tune-sentiment-ce"
    (run_dir / "trials").mkdir(parents=True)
    (run_dir / "search.csv").write_text("trial_id,lr,status\n")
    (run_dir / "run.json").write_text('{"trials": [], "search": {"space": {"lr": "grid:1e-3"}}}')
    code, _, err = cli(*command, str(run_dir))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "harness tune" in err


def test_a_search_is_resumed_by_tune_and_a_run_by_run(cli, tmp_path):
    search, run = tmp_path / "search", tmp_path / "run"
    for path, extra in ((search, {"search": {"space": {"lr": "grid:1e-3"}}}), (run, {})):
        path.mkdir()
        (path / "run.json").write_text(json.dumps({"trials": [{"trial_id": "x", "config": {}}], **extra}))
    code, _, err = cli("run", "--resume", str(search))
    assert code == 2 and f"continue it with `harness tune --resume {search}`" in err
    code, _, err = cli("tune", "--resume", str(run))
    assert code == 2 and f"not a search; finish it with `harness run --resume {run}`" in err
    code, _, err = cli("tune", "--resume", str(search))  # written before searches kept their dimensions
    assert code == 2 and "does not keep the search's dimensions" in err and len(err.strip().splitlines()) == 1


def test_confirmation_seeds_must_be_fresh(cli, tmp_path):
    args = ["--search", "lr=choice:1e-3", "--seed", "2", "--confirm-seeds", "1,2,3", "--output-dir", str(tmp_path)]
    code, _, err = cli("tune", "--tasks", "sentiment", *args)
    assert code == 2 and "leave out the search's seed 2" in err and "--confirm-seeds 3,4,5" in err
    assert not any(tmp_path.iterdir())  # refused before a run directory exists

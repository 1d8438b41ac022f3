"""Every bad input gets one clear line on stderr, exit status 2, no traceback, and no damage."""

import pytest

from tests.conftest import files_of
from tests.glue_fixture import write_glue

GLUE = ("run", "--suite", "glue", "--model", "tiny", "--seeds", "1", "--epochs", "1", "--quiet")


@pytest.fixture
def run_dir(tmp_path):
    """An output directory that already holds a finished run, which no error may touch."""
    old = tmp_path / "out" / "earlier-run" / "trials" / "t1"
    old.mkdir(parents=True)
    (old / "record.json").write_text('{"status": "completed"}\n')
    return tmp_path / "out"


def _bad_row(tmp_path):
    return write_glue(tmp_path / "bad", replace={"RTE/train.tsv": ["index\tsentence1\tsentence2\tlabel", "0\tonly"]})


def _bad_model(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{not json")
    return d


CASES = {
    "unknown suite": (lambda t: ("run", "--suite", "glu"), r"unknown suite 'glu'\. Did you mean 'glue'\?"),
    "unknown task": (lambda t: ("run", "--tasks", "sentimnt"), r"suite 'smoke' has no task 'sentimnt'\. Its tasks:"),
    "unknown objective": (lambda t: ("run", "--objectives", "cee"), r"unknown objective 'cee'\. Did you mean 'ce'\?"),
    "unknown model": (lambda t: ("run", "--model", "tinyy"), r"unknown model 'tinyy'\. Did you mean 'tiny'\?.*local"),
    "negative lr": (lambda t: ("run", "--lr=-1e-5"), r"--lr -1e-05: must be positive"),
    "zero epochs": (lambda t: ("run", "--epochs", "0"), r"--epochs 0: must be at least 1"),
    "seed twice": (lambda t: ("run", "--seeds", "1,2,1"), r"--seeds lists 1 more than once"),
    "seed not an integer": (lambda t: ("run", "--seeds", "1,two"), r"seed 'two' is not an integer"),
    "unknown objective key": (
        lambda t: ("run", "--objective-args", "ce.smoothing=0.1"),
        r"objective 'ce' has no hyper-parameter 'smoothing'",
    ),
    "bad objective value": (
        lambda t: ("run", "--objective-args", "ce.label_smoothing=-1"),
        r"ce\.label_smoothing='-1': must be >= 0\.0",
    ),
    "missing data dir": (
        lambda t: (*GLUE, "--tasks", "rte", "--data-dir", str(t / "nowhere")),
        r"data directory .*nowhere does not exist",
    ),
    "missing task file": (
        lambda t: (*GLUE, "--tasks", "rte", "--data-dir", str(write_glue(t / "g", skip=("RTE/train.tsv",)))),
        r"task rte: .*RTE/train.tsv not found",
    ),
    "malformed row": (
        lambda t: (*GLUE, "--tasks", "rte", "--data-dir", str(_bad_row(t))),
        r"RTE/train.tsv:2: expected at least 4 tab-separated fields, found 2",
    ),
    "unloadable model dir": (
        lambda t: ("run", "--model", str(_bad_model(t))),
        r"cannot load a model from directory .*model.*config\.json",
    ),
    "fp16 on cpu": (lambda t: ("run", "--precision", "fp16"), r"fp16 needs a GPU"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_one_line_and_exit_2(cli, tmp_path, run_dir, case):
    make_args, pattern = CASES[case]
    before = files_of(run_dir)
    code, out, err = cli(*make_args(tmp_path), "--output-dir", str(run_dir))
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err + out
    import re

    assert re.search(pattern, lines[0]), lines[0]
    assert files_of(run_dir) == before  # nothing written, nothing lost


def test_debug_shows_the_traceback(cli):
    from harness.errors import HarnessError

    with pytest.raises(HarnessError):
        cli("--debug", "run", "--suite", "nope")


def test_help_names_the_commands(cli):
    code, out, _ = cli("--help")
    assert code == 0 and all(c in out for c in ("run", "list", "env", "examples:"))


def test_unknown_key_in_a_config_file_is_refused(cli, tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("objectives: [ce]\nlearning_rate: 0.1\n")
    code, _, err = cli("run", "--config", str(path), "--output-dir", str(tmp_path / "out"))
    assert code == 2 and "--config" in err and "unknown option 'learning_rate'" in err
    assert not (tmp_path / "out").exists()

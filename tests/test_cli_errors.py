"""Every bad input gets one clear line on stderr, exit status 2, no traceback, and no damage."""

import pytest

from tests.helpers import files_of, write_glue

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


def _glue_with(tmp_path, name: str, content: bytes):
    data = write_glue(tmp_path / "g")
    (data / name).write_bytes(content)
    return data


def _file(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _run_json(tmp_path, content: bytes):
    run = tmp_path / "old-run"
    (run / "trials").mkdir(parents=True)
    (run / "run.json").write_bytes(content)
    return run


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
    # -- command line: numbers that are not finite, or out of range --
    "cli: lr inf": (lambda t: ("run", "--lr", "inf"), r"argument --lr: 'inf' is not a finite number"),
    "cli: lr nan": (lambda t: ("run", "--lr", "nan"), r"argument --lr: 'nan' is not a finite number"),
    "cli: warmup -inf": (lambda t: ("run", "--warmup-ratio=-inf"), r"'-inf' is not a finite number"),
    "cli: warmup 1": (lambda t: ("run", "--warmup-ratio", "1"), r"--warmup-ratio 1\.0: must be in \[0, 1\)"),
    "cli: epochs 2.5": (lambda t: ("run", "--epochs", "2.5"), r"'2\.5' is not a whole number"),
    "cli: hparam inf": (
        lambda t: ("run", "--objectives", "cmi_min", "--objective-args", "cmi_min.lambda=inf"),
        r"cmi_min\.lambda='inf': must be a finite number",
    ),
    "cli: hparam nan": (
        lambda t: ("run", "--objectives", "cmi_min", "--objective-args", "cmi_min.beta=nan"),
        r"cmi_min\.beta='nan': must be a finite number",
    ),
    "cli: hparam of an objective not run": (
        lambda t: ("run", "--objectives", "ce", "--objective-args", "cmi_min.lambda=0.1"),
        r"'cmi_min' is not among --objectives",
    ),
    "cli: tune zero samples": (
        lambda t: ("tune", "--tasks", "sentiment", "--search", "lr=choice:1e-3", "--num-samples", "0"),
        r"--num-samples 0: must be at least 1",
    ),
    "cli: tune two tasks": (lambda t: ("tune", "--search", "lr=choice:1e-3"), r"searches one task at a time"),
    "cli: teacher missing": (
        lambda t: ("run", "--objectives", "kd"),
        r"kd learn\(s\) from a teacher: give --teacher-model",
    ),
    "cli: student layers of an unknown model": (
        lambda t: ("run", "--model", "tinyy:half"),
        r"unknown model 'tinyy'\. Did you mean 'tiny'\?",
    ),
    # -- config files --
    "config: binary": (
        lambda t: ("run", "--config", str(_file(t, "c.yaml", bytes(range(256))))),
        r"--config .*c\.yaml: not a text file \(byte 128 is not UTF-8\)",
    ),
    "config: a list": (
        lambda t: ("run", "--config", str(_file(t, "c.yaml", b"- ce\n"))),
        r"--config .*c\.yaml: expected a mapping",
    ),
    "config: broken YAML": (
        lambda t: ("run", "--config", str(_file(t, "c.yaml", b"seeds: [1, 2\n"))),
        r"--config .*c\.yaml: cannot read it",
    ),
    "config: missing file": (
        lambda t: ("run", "--config", str(t / "nope.yaml")),
        r"--config .*nope\.yaml: cannot read",
    ),
    "config: python tag": (
        lambda t: ("run", "--config", str(_file(t, "c.yaml", b"seeds: !!python/object/apply:os.system [echo hi]\n"))),
        r"--config .*c\.yaml: cannot read it",
    ),
    "config: setting without objectives": (
        lambda t: ("run", "--config", str(_file(t, "c.yaml", b"setting: [{model: tiny}]\n"))),
        r"each of setting: needs model and objectives",
    ),
    # -- data files --
    "data: header only": (
        lambda t: (
            *GLUE,
            "--tasks",
            "rte",
            "--data-dir",
            str(_glue_with(t, "RTE/train.tsv", b"index\tsentence1\tsentence2\tlabel\n")),
        ),
        r"RTE/train\.tsv: no examples after the header",
    ),
    "data: a byte that is not UTF-8": (
        lambda t: (
            *GLUE,
            "--tasks",
            "rte",
            "--data-dir",
            str(_glue_with(t, "RTE/dev.tsv", b"index\tsentence1\tsentence2\tlabel\n0\ta\xff\tb\tentailment\n")),
        ),
        r"RTE/dev\.tsv:2: byte 0xff is not UTF-8",
    ),
    "data: empty file": (
        lambda t: (*GLUE, "--tasks", "sst2", "--data-dir", str(_glue_with(t, "SST-2/dev.tsv", b""))),
        r"SST-2/dev\.tsv:1: the file is empty",
    ),
    "data: wrong header": (
        lambda t: (*GLUE, "--tasks", "qnli", "--data-dir", str(_glue_with(t, "QNLI/train.tsv", b"a\tb\n1\t2\n"))),
        r"QNLI/train\.tsv:1: header lacks column",
    ),
    "data: unknown label": (
        lambda t: (
            *GLUE,
            "--tasks",
            "rte",
            "--data-dir",
            str(_glue_with(t, "RTE/dev.tsv", b"index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")),
        ),
        r"RTE/dev\.tsv:2: label 'maybe' is not one of",
    ),
    "data: a directory where a file should be": (
        lambda t: (*GLUE, "--tasks", "rte", "--data-dir", str(write_glue(t / "g2", skip=("RTE/train.tsv",)))),
        r"RTE/train\.tsv not found",
    ),
    # -- run state --
    "run state: run.json cut short": (
        lambda t: ("run", "--resume", str(_run_json(t, b'{"command": ["harness", "run"], "trials": [{"tri'))),
        r"run\.json is damaged \(",
    ),
    "run state: run.json empty object": (
        lambda t: ("run", "--resume", str(_run_json(t, b"{}"))),
        r"run\.json is damaged \(it lists no trials\)",
    ),
    "run state: run.json not JSON": (
        lambda t: ("run", "--resume", str(_run_json(t, bytes(range(200))))),
        r"run\.json is damaged",
    ),
    "run state: a trial entry without config": (
        lambda t: ("run", "--resume", str(_run_json(t, b'{"trials": [{"trial_id": "x"}]}'))),
        r"run\.json is damaged \(a trial entry lacks 'config'\)",
    ),
    "storage with the local executor": (
        lambda t: ("run", "--executor", "local", "--storage", "s3://bucket/runs"),
        r"--storage s3://bucket/runs: is where Ray's trials keep their files; .*--executor ray",
    ),
    "run state: resume a file": (
        lambda t: ("run", "--resume", str(_file(t, "run.json", b"{}"))),
        r"no run\.json there",
    ),
    # -- plugins --
    "plugins: a module that does not import": (
        lambda t: ("--plugin", "no_such_plugin_module", "run"),
        r"--plugin no_such_plugin_module: cannot import it",
    ),
}


def _file_as_output(tmp_path):
    return str(_file(tmp_path, "out.txt", b"not a directory"))


STORAGE = {
    "output-dir is a file": (lambda t: _file_as_output(t), r"--output-dir .*out\.txt: .*out\.txt is a file"),
    "output-dir under a file": (lambda t: _file_as_output(t) + "/runs", r"out\.txt is a file; give a directory"),
}


@pytest.mark.parametrize("command", [["run"], ["tune", "--tasks", "sentiment", "--search", "lr=choice:1e-3"]])
@pytest.mark.parametrize("case", sorted(STORAGE))
def test_an_output_dir_that_cannot_hold_runs_is_refused_before_planning(cli, tmp_path, command, case):
    make_dir, pattern = STORAGE[case]
    output = make_dir(tmp_path)
    before = files_of(tmp_path)
    code, out, err = cli(*command, "--output-dir", output)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
    import re

    assert re.search(pattern, err), err
    assert files_of(tmp_path) == before


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

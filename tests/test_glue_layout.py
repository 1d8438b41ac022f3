"""GLUE from disk in the classic layout (every task's columns and labels, missing and malformed
files named by path and line) and from the Hub (mapped to the same columns; unreachable: one line)."""

import os
import shutil

import pytest

from harness.errors import HarnessError
from tests.helpers import write_glue

EXPECTED = {  # task -> (train rows as (text_a, text_b, label), dev splits present)
    "cola": ([("The sailors rode the breeze.", None, 1), ("The more we study verbs.", None, 0)], ["validation"]),
    "sst2": ([("a charming journey ", None, 1), ("hide new secretions ", None, 0)], ["validation"]),
    "mrpc": ([('He said "no".', "He refused.", 1), ("It rained.", "The sun shone.", 0)], ["validation"]),
    "qqp": ([("How to cook?", "How do I cook?", 1), ("Why is sky blue?", "What is love?", 0)], ["validation"]),
    "mnli": (
        [("A man eats.", "A person eats.", 0), ("A man eats.", "Nobody eats.", 2), ("A man eats.", "He is hungry.", 1)],
        ["validation_matched"],
    ),
    "qnli": ([("What is red?", "Apples are red.", 0), ("Who?", "Nobody knows why.", 1)], ["validation"]),
    "rte": ([("No weapons found.", "Weapons found.", 1), ("John runs.", "John moves.", 0)], ["validation"]),
    "wnli": ([("I stuck a pin in a carrot.", "The carrot had a hole.", 1)], ["validation"]),
}


@pytest.fixture
def glue(loaded):
    return loaded.suites.get("glue")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_task_parses_in_the_classic_layout(glue, tmp_path, name):
    rows, dev_splits = EXPECTED[name]
    task = glue.task(name)
    data = glue.load(task, write_glue(tmp_path))
    assert sorted(data.splits) == sorted(["train", *dev_splits])
    train = data.splits["train"]
    got = [(r["text_a"], r.get("text_b"), r["label"]) for r in train]
    assert got == rows
    assert train["idx"] == list(range(len(rows)))


def test_suite_has_the_eight_glue_tasks_with_their_metrics(glue):
    assert {t.name: t.metrics for t in glue.tasks} == {
        "cola": ("mcc",),
        "sst2": ("accuracy",),
        "mrpc": ("f1", "accuracy"),
        "qqp": ("accuracy", "f1"),
        "mnli": ("accuracy",),
        "qnli": ("accuracy",),
        "rte": ("accuracy",),
        "wnli": ("accuracy",),
    }
    assert glue.task("mnli").dev_splits == ("validation_matched", "validation_mismatched")


def test_missing_optional_split_is_reported_not_hidden(glue, tmp_path):
    data = glue.load(glue.task("mnli"), write_glue(tmp_path))
    assert len(data.notes) == 1 and "validation_mismatched" in data.notes[0] and "dev_mismatched.tsv" in data.notes[0]


def test_missing_required_split_is_an_error(glue, tmp_path):
    with pytest.raises(HarnessError, match=r"RTE/dev.tsv not found.*validation split is required"):
        glue.load(glue.task("rte"), write_glue(tmp_path, skip=("RTE/dev.tsv",)))


def test_malformed_row_names_file_and_line(glue, tmp_path):
    bad = {"RTE/train.tsv": ["index\tsentence1\tsentence2\tlabel", "0\ta\tb\tentailment", "1\tonly two fields"]}
    with pytest.raises(HarnessError, match=r"RTE/train.tsv:3: expected at least 4 tab-separated fields, found 2"):
        glue.load(glue.task("rte"), write_glue(tmp_path, replace=bad))


def test_unknown_label_names_file_and_line(glue, tmp_path):
    bad = {"QNLI/train.tsv": ["index\tquestion\tsentence\tlabel", "0\tq\ts\tmaybe"]}
    with pytest.raises(HarnessError, match=r"QNLI/train.tsv:2: label 'maybe' is not one of entailment, not_entailment"):
        glue.load(glue.task("qnli"), write_glue(tmp_path, replace=bad))


def test_fingerprint_follows_the_content_not_the_place_or_time(glue, tmp_path):
    task = glue.task("rte")
    first = glue.load(task, write_glue(tmp_path)).fingerprint
    assert glue.load(task, tmp_path).fingerprint == first
    copy = shutil.copytree(tmp_path / "RTE", tmp_path / "elsewhere" / "RTE")  # another node, a re-provisioned disk
    os.utime(copy / "train.tsv", (1, 1))
    assert glue.load(task, tmp_path / "elsewhere").fingerprint == first
    (tmp_path / "RTE/train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tx\ty\tentailment\n")
    assert glue.load(task, tmp_path).fingerprint != first


def test_hub_copy_is_mapped_to_the_same_columns(glue, monkeypatch):
    """Offline stand-in for nyu-mll/glue: the Hub's own column names and splits, including MNLI's."""
    import datasets
    import harness_plugins.suite_glue as suite_glue

    def fake_load_dataset(repo, name):
        assert (repo, name) == ("nyu-mll/glue", "mnli")
        split = {"premise": ["A man eats."], "hypothesis": ["Nobody eats."], "label": [2], "idx": [7]}
        return datasets.DatasetDict(
            {
                s: datasets.Dataset.from_dict(split)
                for s in ("train", "validation_matched", "validation_mismatched", "test_matched")
            }
        )

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(suite_glue.hub, "reachable", lambda: True)  # the stand-in is the Hub
    data = glue.load(glue.task("mnli"), None)
    assert sorted(data.splits) == ["train", "validation_matched", "validation_mismatched"] and not data.notes
    assert data.splits["train"][0] == {"idx": 7, "text_a": "A man eats.", "label": 2, "text_b": "Nobody eats."}


def test_hub_unreachable_is_one_clear_error(glue, monkeypatch):
    import datasets
    import harness_plugins.suite_glue as suite_glue

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(suite_glue.hub, "reachable", lambda: True)  # reachable, but the call fails
    with pytest.raises(HarnessError, match=r"cannot load GLUE task rte from the Hugging Face Hub .*--data-dir DIR"):
        glue.load(glue.task("rte"), None)


@pytest.mark.parametrize("args", [["--suite", "glue", "--tasks", "rte"], ["--model", "hf:nobody/nothing"]])
def test_an_unreachable_hub_is_one_line_in_seconds(cli, tmp_path, monkeypatch, args):
    """For real: this machine cannot reach the Hub (and with HF_ENDPOINT pointing at a closed port, no machine can)."""
    import time

    from harness import hub

    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub.reachable.cache_clear()
    started = time.perf_counter()
    code, out, err = cli("run", *args, "--output-dir", str(tmp_path))
    hub.reachable.cache_clear()
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Hub is not reachable" in err
    assert time.perf_counter() - started < 15 and not any(tmp_path.iterdir())


def test_built_in_suites_key_their_splits_without_pickling_the_rows(loaded, tmp_path, monkeypatch):
    """``datasets.Dataset.from_dict`` keys a split by dill-pickling its table, which fails on Python 3.12
    with pyarrow 26 (seen on the GPU machine); the built-in suites hand their own key instead."""
    import datasets.arrow_dataset

    def refuse(dataset):
        raise AssertionError("datasets was asked to hash a split's rows")

    monkeypatch.setattr(datasets.arrow_dataset, "generate_fingerprint", refuse)
    glue, smoke = loaded.suites.get("glue"), loaded.suites.get("smoke")
    rte = glue.load(glue.task("rte"), write_glue(tmp_path)).splits
    sentiment = smoke.load(smoke.task("sentiment"), None).splits
    keys = [s._fingerprint for s in (*rte.values(), *sentiment.values())]
    assert len(set(keys)) == len(keys) == 4
    (tmp_path / "RTE/train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tx\ty\tentailment\n")
    assert glue.load(glue.task("rte"), tmp_path).splits["train"]._fingerprint != rte["train"]._fingerprint


PROVENANCE = """
RTE:
  train.tsv: {rows: 2, official_rows: 2490, official: false, note: "a two-row sample for tests"}
  dev.tsv: {rows: 1, official_rows: 277, official: false, note: "NOT the official dev set: made up"}
"""


def test_a_provenance_file_is_kept_in_every_record_and_quoted_by_the_report(cli, tmp_path):
    data = write_glue(tmp_path / "glue")
    (data / "PROVENANCE.yaml").write_text(PROVENANCE)
    args = ["--suite", "glue", "--tasks", "rte", "--data-dir", str(data), "--objectives", "ce", "--seeds", "1"]
    code, _, err = cli("run", *args, "--epochs", "1", "--model", "tiny", "--quiet", "--output-dir", str(tmp_path / "r"))
    assert code == 0, err
    from harness.report import build
    from harness.results import read_json

    (run_dir,) = (tmp_path / "r").iterdir()
    (record,) = [read_json(p) for p in run_dir.glob("trials/*/record.json")]
    assert record["data"]["sources"]["validation"]["provenance"]["note"] == "NOT the official dev set: made up"
    (row,) = build([run_dir]).tables["data"].itertuples()
    assert row.dev.endswith("(NOT the official split): NOT the official dev set: made up")
    assert "(NOT the official split): a two-row sample for tests" in row.train
    assert "NOT the official split" in (run_dir / "report" / "report.md").read_text()


@pytest.mark.parametrize(
    "text,message",
    [
        ("RTE:\n  dev.tsv: {rows: 1, official: true}\n", "RTE/dev.tsv: missing official_rows"),
        ("RTE:\n  dev.tsv: {rows: 1, official_rows: 1, official: yes please}\n", "official 'yes please' is not a bool"),
        ("RTE:\n  dev.tsv: {rows: one, official_rows: 1, official: true}\n", "rows 'one' is not a int"),
        ("RTE:\n  dev.tsv: {rows: 1, official_rows: 1, official: true, source: x}\n", "unknown source"),
        ("- RTE\n", "expected a mapping of task folders"),
    ],
)
def test_a_malformed_provenance_file_is_refused_naming_file_and_entry(glue, tmp_path, text, message):
    data = write_glue(tmp_path / "glue")
    (data / "PROVENANCE.yaml").write_text(text)
    with pytest.raises(HarnessError, match="PROVENANCE.yaml") as exc:
        glue.load(glue.task("rte"), data)
    assert message in str(exc.value)

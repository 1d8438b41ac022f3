"""Your own files as a task, kept models, `harness eval` and `harness predict`, end to end, on files
the test writes (a sentence-pair task with its own column names and string labels)."""

import csv
import json
import random

import numpy as np
import pandas as pd
import pytest

from harness.results import read_json, read_predictions

ANIMALS, COLORS = ["cat", "dog", "fox", "owl"], ["red", "blue", "green", "black"]


def write_pairs(path, n, seed, labels=("agree", "disagree")):
    """premise "the dog is red", claim either the same colour (agree) or another (disagree)."""
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "premise", "claim", "verdict"])
        for i in range(n):
            animal, color, other = rng.choice(ANIMALS), *rng.sample(COLORS, 2)
            label = rng.randrange(2)
            w.writerow(
                [f"ex{i}", f"the {animal} is {color}", f"the {animal} is {[color, other][label]}", labels[label]]
            )
    return path


@pytest.fixture
def files(tmp_path):
    return write_pairs(tmp_path / "pairs.csv", 240, 1), write_pairs(tmp_path / "pairs_dev.csv", 80, 2)


FLAGS = ["--text-columns", "premise,claim", "--label-column", "verdict", "--quiet"]


def _run(cli, files, out, *more):
    train, dev = files
    args = ["run", "--train-file", str(train), "--validation-file", str(dev), *FLAGS, "--objectives", "ce"]
    return cli(*args, "--seeds", "1", "--epochs", "2", "--output-dir", str(out), *more)


def test_a_csv_pair_task_trains_keeps_its_model_and_eval_and_predict_reproduce_it(cli, files, tmp_path):
    code, out, err = _run(cli, files, tmp_path / "runs", "--save-model", "last")
    assert code == 0, err
    (run_dir,) = (tmp_path / "runs").iterdir()
    (trial,) = run_dir.glob("trials/*")
    record = read_json(trial / "record.json")
    assert record["config"]["suite"] == "files" and record["config"]["task"] == "pairs"
    assert record["label_names"] == ["agree", "disagree"] and record["kept_model"] == "model"
    src = record["data"]["sources"]
    assert src["train"]["rows"] == 240 and len(src["validation"]["sha256"]) == 64
    assert "models (1;" in out
    model = trial / "model"
    meta = json.loads((model / "harness.json").read_text())
    assert meta["text_columns"] == ["premise", "claim"] and meta["epoch"] == 2
    assert "| validation | accuracy |" in (model / "README.md").read_text()  # the card, with chance beside

    train, dev = files
    code, out, err = cli("eval", str(model), "--train-file", str(train), "--validation-file", str(dev), *FLAGS[:-1],
                         "--output-dir", str(tmp_path / "evals"))  # fmt: skip
    assert code == 0, err
    (ev,) = (tmp_path / "evals").glob("*/trials/*/record.json")
    evaluated = read_json(ev)
    assert evaluated["final"]["validation"] == record["final"]["validation"]  # the same numbers, exactly
    assert cli("report", str(ev.parent.parent.parent))[0] == 0

    code, out, err = cli("predict", str(model), "--file", str(dev), "--output", str(tmp_path / "p.tsv"))
    assert code == 0, err
    table = pd.read_csv(tmp_path / "p.tsv", sep="\t")
    assert len(table) == 80 and list(table.columns) == ["uid", "prediction", "prob_agree", "prob_disagree"]
    trained = read_predictions(trial / "dev_predictions.safetensors")["validation"]["probs"]
    assert list(table["prediction"]) == [["agree", "disagree"][i] for i in trained.argmax(1)]
    assert np.allclose(table[["prob_agree", "prob_disagree"]].to_numpy(), trained, atol=1e-5)


def test_save_model_best_keeps_the_best_epoch_and_says_its_dev_figure_is_optimistic(cli, files, tmp_path):
    code, _, err = _run(cli, files, tmp_path / "runs", "--save-model", "best", "--epochs", "3")
    assert code == 0, err
    (trial,) = tmp_path.glob("runs/*/trials/*")
    record = read_json(trial / "record.json")
    scores = [e["validation"]["accuracy"] for e in record["epochs"]]
    meta = json.loads((trial / "model" / "harness.json").read_text())
    assert meta["epoch"] == 1 + int(np.argmax(scores)) and meta["selection"] == "best"
    assert "optimistic" in (trial / "model" / "README.md").read_text()


def _csv(path, rows, header=("uid", "premise", "claim", "verdict")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


HEADER = ("uid", "premise", "claim", "verdict")
BAD = [
    ("train", [["a", "x y", "x y", "agree"]], ("uid", "premise", "other", "verdict"), "no column 'claim'"),
    ("train", [["a", "x", "y", "agree"], ["b", "x", "y", ""]], HEADER, "row 2 has an empty label"),
    ("validation", [["a", "x", "y", "agree"], ["b", "x", "y", "maybe"]], HEADER, "row 2 has label 'maybe'"),
    ("validation", [["a", "", "y", "agree"], ["b", "", "y", "disagree"]], HEADER, "'premise' is empty on every row"),
]


@pytest.mark.parametrize("bad,rows,header,message", BAD)
def test_a_bad_file_is_refused_naming_file_and_row(cli, files, tmp_path, bad, rows, header, message):
    train, dev = files
    broken = _csv(tmp_path / f"broken_{bad}.csv", rows, header)
    train, dev = (broken, dev) if bad == "train" else (train, broken)
    code, _, err = _run(cli, (train, dev), tmp_path / "runs")
    assert code == 2 and message in err and str(broken) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_file_options_are_checked_before_anything_runs(cli, files, tmp_path):
    train, dev = files
    code, _, err = cli("run", "--train-file", str(train), "--output-dir", str(tmp_path))
    assert code == 2 and "go together" in err
    code, _, err = cli("run", "--train-file", str(train), "--validation-file", str(tmp_path / "x.txt"))
    assert code == 2 and "no such file" in err
    code, _, err = cli("run", "--train-file", str(train), "--validation-file", str(dev), "--suite", "glue")
    assert code == 2 and "leave --suite and --tasks out" in err
    code, _, err = cli("predict", str(tmp_path), "--file", str(dev), "--output", str(tmp_path / "p.csv"))
    assert code == 2 and "not a kept model" in err


def test_a_hub_dataset_offline_is_one_line(cli, tmp_path, monkeypatch):
    from harness import hub

    monkeypatch.setattr(hub, "reachable", lambda: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    code, _, err = cli("run", "--suite", "hf:imdb", "--output-dir", str(tmp_path), "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "hf:imdb: the Hugging Face Hub is not reachable" in err and "--train-file" in err


def test_a_hub_dataset_becomes_a_task_through_the_real_loading_path(cli, tmp_path, monkeypatch):
    """datasets.load_dataset answered here by an in-memory copy: the mapping from its columns on is real."""
    import datasets

    from harness import hub

    def rows(n, seed):
        rng = random.Random(seed)
        return [{"review": f"the film is {w}", "stars": w} for w in rng.choices(["good", "bad"], k=n)]

    fake = datasets.DatasetDict(
        {s: datasets.Dataset.from_list(rows(n, i)) for i, (s, n) in enumerate((("train", 64), ("validation", 32)))}
    )
    asked = []
    monkeypatch.setattr(hub, "reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None: asked.append((name, config)) or fake)
    args = ["--suite", "hf:someone/reviews:plain", "--text-columns", "review", "--label-column", "stars"]
    code, _, err = cli("run", *args, "--objectives", "ce", "--seeds", "1", "--epochs", "1", "--quiet",
                       "--output-dir", str(tmp_path))  # fmt: skip
    assert code == 0, err
    assert asked[0] == ("someone/reviews", "plain")
    (record,) = [read_json(p) for p in tmp_path.glob("*/trials/*/record.json")]
    assert record["config"]["task"] == "someone_reviews_plain" and record["label_names"] == ["bad", "good"]
    assert record["data"]["sources"]["validation"]["path"] == "hf:someone/reviews:plain[validation]"


@pytest.mark.parametrize("task,folder,header,row,values", [
    ("rte", "RTE", "index\tsentence1\tsentence2", '7\tHe said "no.\tHe refused.', {"entailment", "not_entailment"}),
    ("sst2", "SST-2", "index\tsentence", '3\ta "charming journey', {"0", "1"}),
])  # fmt: skip
def test_a_glue_test_file_becomes_a_submission_file(cli, tmp_path, task, folder, header, row, values):
    """GLUE's test.tsv (tabs, quotes not special) in; `index<TAB>prediction` out, label names where GLUE
    wants them (MNLI, QNLI, RTE) and 0/1 elsewhere."""
    from tests.helpers import write_glue

    data = write_glue(tmp_path / "glue")
    args = ["--suite", "glue", "--tasks", task, "--data-dir", str(data), "--objectives", "ce", "--seeds", "1"]
    code, _, err = cli(
        "run", *args, "--epochs", "1", "--save-model", "last", "--quiet", "--output-dir", str(tmp_path / "r")
    )
    assert code == 0, err
    (model,) = tmp_path.glob("r/*/trials/*/model")
    (tmp_path / "test.tsv").write_text(f"{header}\n{row}\n0\t{row.split(chr(9), 1)[1]}\n")
    code, out, err = cli("predict", str(model), "--file", str(tmp_path / "test.tsv"), "--output",
                         str(tmp_path / f"{folder}.tsv"), "--glue")  # fmt: skip
    assert code == 0, err
    lines = (tmp_path / f"{folder}.tsv").read_text().splitlines()
    assert lines[0] == "index\tprediction"
    assert [x.split("\t")[0] for x in lines[1:]] == [row.split("\t")[0], "0"]
    assert {x.split("\t")[1] for x in lines[1:]} <= values

"""Published GLUE dev numbers, each with the metric behind it, shown beside (never mixed with) results.

* Sanh et al. 2019 (DistilBERT), Table 1: medians of 5 seeds, BERT-base and DistilBERT. The
  paper does not say which metric its MRPC and QQP figures are (GLUE scores both by F1 and
  accuracy), nor whether MNLI is matched; the table says so rather than guess.
* The Hugging Face ``run_glue.py`` example's README: bert-base-cased, 3 epochs, lr 2e-5,
  batch 32, one run; every metric named.
"""

from __future__ import annotations

import pandas as pd

SANH = "Sanh et al. 2019 (DistilBERT), Table 1: GLUE dev, medians of 5 runs"
RUN_GLUE = "HF transformers run_glue.py README: bert-base-cased, 3 epochs, lr 2e-5, batch 32, 1 run"
UNSTATED = "not stated by the paper (GLUE reports F1 and accuracy)"

# (source, model, task, metric as published, score %)
ROWS = [
    *[
        (SANH, model, task, metric, score)
        for model, scores in {
            "bert-base": (56.3, 86.7, 88.6, 91.8, 89.6, 69.3, 92.7, 53.5),
            "distilbert-base": (51.3, 82.2, 87.5, 89.2, 88.5, 59.9, 91.3, 56.3),
        }.items()
        for (task, metric), score in zip(
            [
                ("cola", "MCC"),
                ("mnli", "accuracy (matched or mismatched not stated)"),
                ("mrpc", UNSTATED),
                ("qnli", "accuracy"),
                ("qqp", UNSTATED),
                ("rte", "accuracy"),
                ("sst2", "accuracy"),
                ("wnli", "accuracy"),
            ],
            scores,
            strict=True,
        )
    ],
    (RUN_GLUE, "bert-base-cased", "cola", "MCC", 56.53),
    (RUN_GLUE, "bert-base-cased", "sst2", "accuracy", 92.32),
    (RUN_GLUE, "bert-base-cased", "mrpc", "F1", 88.85),
    (RUN_GLUE, "bert-base-cased", "mrpc", "accuracy", 84.07),
    (RUN_GLUE, "bert-base-cased", "qqp", "accuracy", 90.71),
    (RUN_GLUE, "bert-base-cased", "qqp", "F1", 87.49),
    (RUN_GLUE, "bert-base-cased", "mnli", "accuracy, matched", 83.91),
    (RUN_GLUE, "bert-base-cased", "mnli", "accuracy, mismatched", 84.10),
    (RUN_GLUE, "bert-base-cased", "qnli", "accuracy", 90.66),
    (RUN_GLUE, "bert-base-cased", "rte", "accuracy", 65.70),
    (RUN_GLUE, "bert-base-cased", "wnli", "accuracy", 56.34),
]


def table() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=["source", "model", "task", "metric", "score"])


def beside(model: str) -> dict[str, tuple[float, str]]:
    """Sanh et al.'s figure per task for a model of the paper's (task -> (score, metric)), else {}."""
    return {task: (score, metric) for source, m, task, metric, score in ROWS if source == SANH and m == model}

"""The cross-entropy objective: its loss worked by hand, and its declared hyper-parameters refusing
bad values with the reason (and a close match for a misspelled name)."""

import pytest
import torch

from harness.errors import HarnessError
from harness.objective import Outputs


def test_ce_matches_a_hand_value(loaded):
    ce = loaded.objectives.get("ce")(2)
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    out = ce.loss(Outputs(logits, torch.tensor([0, 1]), torch.arange(2)))
    # -log(1/2) = 0.693147; -log(1/(1+e^2)) = log(1+e^2) = 2.126928; mean 1.410038
    assert out.loss.item() == pytest.approx(1.410038, abs=1e-6)


@pytest.mark.parametrize(
    "given, message",
    [
        ({"label_smoothing": -0.1}, r"ce\.label_smoothing=-0\.1: must be >= 0\.0"),
        ({"label_smoothing": "abc"}, r"ce\.label_smoothing='abc': expected a float"),
        ({"smoothing": 0.1}, r"no hyper-parameter 'smoothing'\. Did you mean 'label_smoothing'\?"),
    ],
)
def test_bad_hyper_parameters_are_refused(loaded, given, message):
    with pytest.raises(HarnessError, match=message):
        loaded.objectives.get("ce")(2, **given)

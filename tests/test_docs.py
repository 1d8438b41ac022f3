"""The guides state defaults the code holds: each is read back from the registry and the options, so a
changed default fails here until the guide says the new one."""

import re
from pathlib import Path

import pytest

GUIDE = (Path(__file__).resolve().parents[1] / "docs" / "user-guide.md").read_text()


def _objective_rows() -> dict[str, str]:
    return dict(re.findall(r"^\| `(\w+)` \| .+ \| (.+) \|$", GUIDE, re.M))


def test_the_objective_table_lists_every_objective_with_the_defaults_it_registers(loaded):
    rows = _objective_rows()
    assert set(rows) == set(loaded.objectives.names())
    checked = 0
    for name, cell in rows.items():
        hparams = {h.name: h.default for h in loaded.objectives.get(name).hparams}
        listed = re.findall(r"`(\w+)`(?: \(([^)]*)\))?", cell)  # a parenthesis: the default, then a remark
        assert {h for h, _ in listed} == set(hparams), name  # every hyper-parameter, none invented
        for hp, default in listed:
            if default:
                assert float(default.split(";")[0]) == pytest.approx(float(hparams[hp])), (name, hp)
                checked += 1
    assert checked >= 8


def test_the_lora_defaults_the_guide_states_are_the_codes():
    from harness.lora import DEFAULTS

    stated = re.search(r"`--peft lora --peft-args ([^`]+)` \(the defaults", GUIDE).group(1)
    assert dict(pair.split("=") for pair in stated.split(",")) == {k: str(v) for k, v in DEFAULTS.items()}


def test_the_search_default_the_guide_states_is_the_codes():
    from harness.search import Search

    assert re.search(r"`--num-samples` draws configs \(default (\d+);", GUIDE).group(1) == str(Search.num_samples)

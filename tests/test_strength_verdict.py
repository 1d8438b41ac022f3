"""The strength study's decision rules (benchmarks/cmi_strength_verdict.py), one case per verdict."""

import pytest

from benchmarks.cmi_strength_verdict import claim_verdict, main, verdicts

P, F = "cmi_min[lambda=1.0,beta=0.1]", "cmi_min[lambda=1.0,beta=0.1,space=features,temperature=0.2]"
KD1 = "cmi_max_kd[teacher_lambda=1.0]"


def tables(effects: dict, teacher_acc: float = 85.0) -> dict:
    """``effects``: {(arm, task): (delta, ci_high, p, cmi_ratio, holds)}."""
    sig, manip = [], []
    for (arm, task), (delta, high, p, ratio, holds) in effects.items():
        model, base = ("minilm-l6:half", "kd") if arm == KD1 else ("minilm-l6", "ce")
        sig.append(
            {
                "model": model,
                "objective": arm,
                "baseline": base,
                "task": task,
                "delta": delta,
                "ci_low": delta - 1,
                "ci_high": high,
                "p_value": p,
                "equivalence": "not shown within ±1",
                "mde": 1.5,
            }
        )
        target = "teacher dev CMI (posterior) up" if arm == KD1 else "dev CMI (posterior) down"
        manip.append({"model": model, "objective": arm, "task": task, "target": target, "ratio": ratio, "holds": holds})
    teachers = [{"model": "minilm-l6:half", "task": t, "objective": KD1, "mean": teacher_acc} for t in ("sst2", "qqp")]
    chance = [{"task": t, "metric": "accuracy", "chance": 50.9} for t in ("sst2", "qqp")]
    return {"significance": sig, "manipulation": manip, "teachers": teachers, "chance": chance}


def verdict_of(rows, claim_prefix, arm_prefix):
    return next(r["verdict"] for r in rows if r["claim"].startswith(claim_prefix) and r["arm"].startswith(arm_prefix))


def test_each_verdict_follows_its_rule():
    rows = verdicts(
        tables(
            {
                (P, "sst2"): (1.2, 2.0, 0.001, 0.6, True),  # ahead on both, Holm (4 tests) 0.004 < 0.05
                (P, "qqp"): (0.3, 1.0, 0.40, 0.7, True),
                (F, "sst2"): (-0.2, 0.4, 0.6, 0.8, True),  # refuted: upper bounds below +0.5 on both
                (F, "qqp"): (0.1, 0.45, 0.7, 0.85, True),
                (KD1, "sst2"): (0.5, 1.5, 0.2, 1.05, False),  # teacher CMI moved 5%: not tested
                (KD1, "qqp"): (0.5, 1.5, 0.2, 1.30, True),
            }
        )
    )
    assert verdict_of(rows, "1", "posterior") == "reproduces"
    assert verdict_of(rows, "1", "features") == "refuted"
    assert verdict_of(rows, "1", "all") == "reproduces"
    assert verdict_of(rows, "2", "teacher lambda 1") == "not tested" == verdict_of(rows, "2", "all")


def test_holm_over_the_claims_four_tests_and_the_inconclusive_middle():
    effects = {
        (P, "sst2"): (1.0, 2.0, 0.03, 0.6, True),  # alone significant; x4 under Holm: 0.12
        (P, "qqp"): (0.4, 1.0, 0.5, 0.6, True),
        (F, "sst2"): (0.2, 1.0, 0.5, 0.6, True),
        (F, "qqp"): (0.2, 1.0, 0.5, 0.6, True),
    }
    rows = verdicts(tables(effects))
    assert verdict_of(rows, "1", "posterior") == "inconclusive" == verdict_of(rows, "1", "all")
    assert verdict_of(rows, "2", "all") == "not run"  # no distillation rows yet


def test_a_teacher_at_chance_fails_the_manipulation_even_when_its_cmi_moved():
    effects = {(KD1, t): (2.0, 3.0, 0.001, 1.5, True) for t in ("sst2", "qqp")}
    assert verdict_of(verdicts(tables(effects, teacher_acc=85.0)), "2", "all") == "reproduces"
    assert verdict_of(verdicts(tables(effects, teacher_acc=52.0)), "2", "all") == "not tested"


@pytest.mark.parametrize(
    "arms,want",
    [
        (["refuted", "not tested"], "refuted"),
        (["refuted", "inconclusive"], "inconclusive"),
        (["not tested", "not tested"], "not tested"),
        (["reproduces", "refuted"], "reproduces"),
    ],
)
def test_claim_combination(arms, want):
    assert claim_verdict(arms) == want


def test_a_missing_report_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert "harness report" in capsys.readouterr().err

"""Converters: an option's value as the command line gives it (text) or a ``--config`` YAML file
gives it (its own types: ``seeds: [1, 2]`` or ``--seeds 1,2``) -> the option's type. The
command-line parser uses them as its ``type=``, and harness.options for YAML values, so a value is
converted once, in one way; a refusal is an ``Invalid`` the parser shows after the flag's name."""

from __future__ import annotations

import argparse
import math
from typing import Any

Invalid = argparse.ArgumentTypeError  # a converter's refusal; the parser shows it after the flag's name


def words(kind: str):
    def convert(value: Any) -> list[str]:
        items = value if isinstance(value, list) else str(value).split(",")
        items = [str(s).strip() for s in items if str(s).strip()]
        if not items:
            raise Invalid(f"{kind}: give a comma-separated list")
        return items

    return convert


def number(kind: type):
    def convert(value: Any):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Invalid(f"{value!r} is not a {'whole number' if kind is int else 'number'}")
        try:
            parsed = kind(value) if isinstance(value, str) else float(value)
        except ValueError:
            raise Invalid(f"{value!r} is not a {'whole number' if kind is int else 'number'}") from None
        if not math.isfinite(parsed):
            raise Invalid(f"{value!r} is not a finite number")
        if kind is int and parsed != int(parsed):
            raise Invalid(f"{value!r} is not a whole number")
        return kind(parsed)

    return convert


def seeds(value: Any) -> list[int]:
    out = []
    for s in words("seeds")(value if isinstance(value, list) else str(value)):
        try:
            out.append(int(s))
        except ValueError:
            raise Invalid(f"seed {s!r} is not an integer; write e.g. --seeds 1,2,3") from None
    return out


def confirm_seeds(value: Any) -> list[int]:
    return [] if str(value).strip().lower() == "none" else seeds(value)


SETTING_KEYS = ("model", "objectives", "teacher_model", "objective_args", "seeds")


def setting(value: Any) -> dict:
    """``MODEL=OBJ,OBJ[@TEACHER]``, or the YAML's ``{model, objectives, teacher_model, objective_args,
    seeds}``: the last two (config files only) override the run's for this setting's trials, so one
    study can hold several doses of one objective, each with its own seeds."""
    extra: dict[str, Any] = {"objective_args": {}, "seeds": None}
    if isinstance(value, dict):
        if not {"model", "objectives"} <= set(value) or set(value) - set(SETTING_KEYS):
            raise Invalid(
                f"each of setting: needs model and objectives (and may name teacher_model, objective_args, "
                f"seeds), got {value!r}"
            )
        model, objectives, teacher = value["model"], value["objectives"], value.get("teacher_model")
        extra["objective_args"] = dotted("objective_args", "OBJECTIVE: {KEY: VALUE}")(value.get("objective_args") or {})
        extra["seeds"] = seeds(value["seeds"]) if value.get("seeds") is not None else None
    else:
        model, eq, rest = str(value).partition("=")
        objectives, _, teacher = rest.partition("@")
        if not (eq and model.strip() and objectives.strip()):
            raise Invalid(f"--setting {value!r}: write MODEL=OBJ,OBJ[@TEACHER], e.g. minilm-l6=ce,cmi_min")
    return {
        "model": str(model).strip(),
        "objectives": words("objectives")(objectives),
        "teacher_model": str(teacher).strip() or None if teacher else None,
        **extra,
    }


def settings(value: Any) -> list[dict]:
    return [setting(v) for v in (value if isinstance(value, list) else [value])]


def dotted(flag: str, form: str):
    """``GROUP.KEY=VALUE,...`` or the YAML's ``{GROUP: {KEY: VALUE}}`` -> {group: {key: value}}. The
    values stay as given (text, or the YAML's types); the planner checks groups, keys and values."""

    def convert(value: Any) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if isinstance(value, dict):
            for group, kv in value.items():
                if not isinstance(kv, dict):
                    raise Invalid(f"{flag}: {group}: expected a mapping of KEY: VALUE, got {kv!r}")
                out[str(group)] = {str(k): v for k, v in kv.items()}
            return out
        for item in filter(None, (s.strip() for s in str(value).split(","))):
            key, eq, text = item.partition("=")
            group, dot, name = key.partition(".")
            if not (eq and dot and group and name):
                raise Invalid(f"{flag} {item!r}: write {form}")
            out.setdefault(group, {})[name] = text
        return out

    return convert


def text(value: Any) -> str:
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise Invalid(f"{value!r}: expected a word or a path")
    return str(value)


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{value!r}: expected true or false")
    return value


def pairs(value: Any) -> dict[str, Any]:
    """``KEY=VALUE,...`` or the YAML's ``{KEY: VALUE}`` -> {key: value}, values as given."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    out = {}
    for item in filter(None, (s.strip() for s in str(value).split(","))):
        key, eq, text_ = item.partition("=")
        if not (eq and key.strip()):
            raise Invalid(f"{item!r}: write KEY=VALUE, e.g. r=16,alpha=32 (targets: a+b+c or all-linear)")
        out[key.strip()] = text_.strip()
    return out


def texts(value: Any) -> list[str]:
    return [text(v) for v in (value if isinstance(value, list) else [value])]

"""The objective contract that plugin authors implement.

An objective turns one forward pass into a scalar training loss. The training loop
(harness.trainer) is the same for every objective; an objective only says

* ``name``/``description``: how it is selected (``--objectives NAME``) and listed;
* ``hparams``: its hyper-parameters, with defaults and validation; users set them as
  ``--objective-args NAME.KEY=VALUE``;
* ``compare_to``: the objectives it is judged against on the same model in reports
  (default ``("ce",)``);
* ``needs``: which forward outputs an instance reads besides the labels: ``"logits"`` (always
  given), ``"features"`` (the pooled vector the classification head reads),
  ``"teacher_logits"`` (a teacher's cached logits for the batch; see ``teacher_stages``).
  Resolved per instance from its hyper-parameters: ``needs_for(hp)`` returns the class
  attribute ``needs`` unless overridden (``cmi_min`` reads features only with
  ``space=features``); each instance holds the result, checked against KNOWN_NEEDS, as
  ``self.needs``, which the training loop reads;
* ``teacher_stages(hp)``: for objectives that learn from a teacher, how the teacher is
  trained: a list of TeacherStage, each a teacher trial initialised from the previous one.
  The harness plans, runs and shares these trials;
* ``loss(out)``: the scalar loss plus named parts the loop logs;
* optionally ``on_step_end``/``on_epoch_end`` to keep state (e.g. class centroids),
  with ``state_dict``/``load_state_dict`` so that state is checkpointed (tensors only).
  With several workers per trial each sees its share of the global batch: statistics meant
  to cover the batch are summed with ``harness.sum_over_ranks``;
* optionally ``cmi_distribution(out)``: when the objective shapes a distribution other than
  the class posterior (``cmi_min`` with ``space=features``), its name and that distribution,
  so dev CMI, Gamma and NCMI are recorded in that space too;
* optionally ``wants_train_pass = True``: before training and after each epoch the loop then
  runs an eval-mode pass over the training data, calling ``on_pass_batch`` per batch and
  ``on_pass_end`` after the last (e.g. to compute exact class centroids).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import HarnessError

if TYPE_CHECKING:  # torch loads with the first loss computed, not when plugins are listed
    import torch

KNOWN_NEEDS = frozenset({"logits", "features", "teacher_logits"})  # the outputs the training loop can hand over


@dataclass(frozen=True)
class HParam:
    """One hyper-parameter: its default, meaning, and the values it accepts."""

    name: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None

    def parse(self, owner: str, value: Any) -> Any:
        """Convert ``value`` (possibly a string from the command line) to the default's type and check it."""
        kind = type(self.default)
        where = f"{owner}.{self.name}={value!r}"
        try:
            if kind is bool and isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = value.lower() in ("true", "1", "yes")
            else:
                value = kind(value)
        except (TypeError, ValueError):
            raise HarnessError(f"{where}: expected a {kind.__name__}; {self.help}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise HarnessError(f"{where}: must be a finite number")
        if self.minimum is not None and value < self.minimum:
            raise HarnessError(f"{where}: must be >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise HarnessError(f"{where}: must be <= {self.maximum}")
        if self.choices is not None and value not in self.choices:
            raise HarnessError(f"{where}: must be one of {', '.join(map(str, self.choices))}")
        return value


@dataclass(frozen=True)
class TeacherStage:
    """One teacher trial: ``objective`` with ``args``, for ``epochs`` (None: the run's --epochs)."""

    objective: str
    args: dict[str, Any] = field(default_factory=dict)
    epochs: int | None = None


@dataclass
class Outputs:
    """What the training loop hands an objective for one batch."""

    logits: torch.Tensor  # (B, C) class scores z(x)
    labels: torch.Tensor  # (B,) int64
    idx: torch.Tensor  # (B,) example ids within the split
    features: torch.Tensor | None = None  # (B, H) pooled vector fed to the head, when "features" is needed
    teacher_logits: torch.Tensor | None = None  # (B, C) the teacher's logits, when "teacher_logits" is needed


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar to minimise
    parts: dict[str, torch.Tensor] = field(default_factory=dict)  # named terms, logged as floats


class Objective:
    """Base class of every training objective. Subclass it and register the class in a plugin.

    An instance is one trial's objective: ``self.hp`` its hyper-parameters, ``self.needs`` the
    forward outputs it reads, resolved from them by ``needs_for(self.hp)``. Set a class attribute
    ``needs`` when they never depend on a setting (``kd``), override ``needs_for`` when they do.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    hparams: ClassVar[tuple[HParam, ...]] = ()
    # What every instance reads when that does not depend on hyper-parameters; an instance's own
    # ``needs`` (set in __init__) is ``needs_for(self.hp)``, which defaults to this.
    needs: frozenset[str] = frozenset({"logits"})
    compare_to: ClassVar[tuple[str, ...]] = ("ce",)
    # Whose dev CMI this objective means to move, and which way: ("self", -1) lowers the trained
    # model's own, ("teacher", +1) raises its teacher's; None: not a CMI treatment. Reports check
    # it moved (harness.manipulation) before they read the objective's effect.
    cmi_target: ClassVar[tuple[str, int] | None] = None
    wants_train_pass: bool = False

    def __init__(self, num_labels: int, **hparams: Any):
        self.num_labels = num_labels
        self.hp = self.resolve_hparams(hparams)
        self.needs = self._checked_needs(self.hp)

    @classmethod
    def resolve_hparams(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``given``; unknown keys and bad values raise HarnessError."""
        spec = {h.name: h for h in cls.hparams}
        for key in given:
            if key not in spec:
                close = difflib.get_close_matches(key, spec, n=1)
                guess = f" Did you mean {close[0]!r}?" if close else ""
                known = ", ".join(spec) or "none"
                raise HarnessError(
                    f"objective {cls.name!r} has no hyper-parameter {key!r}.{guess} Known: {known} "
                    f"(see `harness list --details {cls.name}`)"
                )
        return {n: h.parse(cls.name, given[n]) if n in given else h.default for n, h in spec.items()}

    @classmethod
    def label(cls, hp: dict[str, Any]) -> str:
        """How reports name a trial of this objective: ``name``, with the hyper-parameters that differ
        from their defaults, e.g. ``cmi_max[centroids=exact]``; trials are grouped by this label."""
        changed = [f"{h.name}={hp[h.name]}" for h in cls.hparams if h.name in hp and hp[h.name] != h.default]
        return f"{cls.name}[{','.join(changed)}]" if changed else cls.name

    @classmethod
    def validate_class(cls) -> None:
        """Checks a plugin's class once, at registration, so mistakes surface with the plugin's name."""
        for attr in ("name", "description"):
            if not isinstance(getattr(cls, attr, None), str):
                raise TypeError(f"{cls.__qualname__} must define a string class attribute {attr!r}")
        if cls.loss is Objective.loss:
            raise TypeError(f"{cls.__qualname__} must define loss(self, out) -> LossOutput (it has none)")
        target = cls.cmi_target
        if target is not None and not (
            isinstance(target, tuple) and len(target) == 2 and target[0] in ("self", "teacher") and target[1] in (-1, 1)
        ):
            raise TypeError(
                f'{cls.__qualname__}.cmi_target must be None or ("self" | "teacher", -1 | +1), got {target!r}'
            )
        cls.needs_by_setting()

    @classmethod
    def needs_for(cls, hp: dict[str, Any]) -> frozenset[str]:
        """The forward outputs (of KNOWN_NEEDS) an instance with hyper-parameters ``hp`` reads.

        The class attribute ``needs`` unless overridden; override it when they depend on a setting,
        from ``hp`` alone (it is also asked without an instance, by registration and
        ``harness list --details``), e.g. ``{"logits", "features"} if hp["space"] == "features" else
        {"logits"}``."""
        return cls.needs

    @classmethod
    def _checked_needs(cls, hp: dict[str, Any]) -> frozenset[str]:
        """``needs_for(hp)`` as a frozenset; unknown entries raise TypeError naming the objective and setting."""
        needs = frozenset(cls.needs_for(hp))
        unknown = needs - KNOWN_NEEDS
        if unknown:
            raise TypeError(
                f"{cls.__qualname__}: objective {cls.label(hp)} needs unknown outputs {sorted(unknown)}; "
                f"known: {', '.join(sorted(KNOWN_NEEDS))}"
            )
        return needs

    @classmethod
    def needs_by_setting(cls) -> dict[str, frozenset[str]]:
        """What instances need, checked: under the defaults (key ``""``), and under each listed value of a
        hyper-parameter (``choices``, or True/False) that changes it, keyed ``KEY=VALUE``; e.g. for
        cmi_min ``{"": {"logits"}, "space=features": {"logits", "features"}}``."""
        defaults = {h.name: h.default for h in cls.hparams}
        out = {"": cls._checked_needs(defaults)}
        for h in cls.hparams:
            values = h.choices or ((False, True) if isinstance(h.default, bool) else ())
            for value in values:
                needs = cls._checked_needs({**defaults, h.name: value})
                if needs != out[""]:
                    out[f"{h.name}={value}"] = needs
        return out

    @classmethod
    def teacher_stages(cls, hp: dict[str, Any]) -> list[TeacherStage]:
        """The teacher trials this objective learns from, first to last; [] for none."""
        return []

    def loss(self, out: Outputs) -> LossOutput:
        raise NotImplementedError

    def cmi_distribution(self, out: Outputs) -> tuple[str, torch.Tensor] | None:
        """(space name, P_x (B, K)) when this objective shapes a distribution other than softmax(logits)."""
        return None

    def on_step_end(self, out: Outputs) -> None:
        """Called after each optimizer step with detached outputs of that step's batch."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called after the last step of each epoch (epochs count from 0)."""

    def on_pass_batch(self, out: Outputs) -> None:
        """With ``wants_train_pass``: one batch of the eval-mode pass over the training data."""

    def on_pass_end(self) -> None:
        """With ``wants_train_pass``: the pass over the training data is complete."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"objective {self.name!r} keeps no state but was given {sorted(state)}")

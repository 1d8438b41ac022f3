"""The Tune callback and stopper the Ray driver (harness.ray_executor) runs its Tune runs with."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from ray import tune

from harness.ray_trial import job_trial

log = logging.getLogger("harness")


class ReleaseResources(tune.Callback):
    """A Tune callback that removes a trial's worker placement group when the trial ends.

    Ray Train removes it itself when training ends; but a trial Tune stops (an early stop by
    the scheduler), and now and then one that ends as Tune tears it down, loses its Train
    controller first, and Train's fallback cleaner needs Ray's state API (the dashboard), which
    a quiet local Ray does not run: the group's CPUs would stay reserved and later trials would
    wait for them forever (seen: a search stuck after its first two trials). The group is known
    from what the trial reported to Tune (its workers' ``placement_group``), not from its files."""

    def __init__(self) -> None:
        self.groups: dict[str, str] = {}  # Tune trial id -> its workers' placement group

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if "placement_group" in result:
            self.groups[trial.trial_id] = result["placement_group"]

    def release(self, trial) -> None:
        from ray._raylet import PlacementGroupID
        from ray.util import placement_group_table
        from ray.util.placement_group import PlacementGroup, remove_placement_group

        hex_id = self.groups.pop(trial.trial_id, None)
        if hex_id:
            group = PlacementGroup(PlacementGroupID(bytes.fromhex(hex_id)))
            if placement_group_table(group).get("state") not in ("REMOVED", None):
                remove_placement_group(group)
                log.info("released the placement group Ray Train left behind by %s", job_trial(trial.config).trial_id())

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.release(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.release(trial)


class CtrlC(tune.Stopper):
    """Ctrl-C ends the Tune run at the next turn of Tune's loop (``stop_all``), and ``catching`` then
    raises KeyboardInterrupt, so the run can be resumed. The signal's own KeyboardInterrupt can land
    in a callback from Ray's compiled code, which swallows it: seen once, a run that trained on after
    Ctrl-C until its last epoch."""

    def __init__(self):
        self.pressed = False

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.pressed

    @contextlib.contextmanager
    def catching(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # only there can Python take signals
            yield
            return
        previous = signal.signal(signal.SIGINT, lambda *_: setattr(self, "pressed", True))
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
        if self.pressed:
            raise KeyboardInterrupt

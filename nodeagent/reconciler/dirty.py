"""Which groups a reconciler turn observes and plans. Pure.

Observing a group costs actuator calls and a status comparison; with a thousand groups,
doing that for every group every turn was most of an idle agent's CPU. So a turn looks at
a group when something that decides its fate may have changed since it last looked:

- its ResourceGroup object or its placement record is another object (the informer keeps
  one decoded object per stored revision, so identity tells a change without comparing);
- this node's liveness view or its serving lease changed (a group's mode depends on them:
  docs/safety.md's rules are applied to every group again);
- something asked for it (`poke`): a probe that fired, a status write that did not land;
- it was not settled when last looked at: actions to take, a failure, a back-off, an
  observation that does not match its mode, or nothing seen of it yet;
- otherwise in turn (`Rotation`): a slice every turn, so that a resource changed behind
  the agent's back (an address deleted by hand, a service killed) is still noticed within
  `resync_period` of the number of groups.

A group that is none of these keeps its last view, which by the rules above is settled:
planning it again would do nothing.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from nodeagent.observation import State
from nodeagent.reconciler.plan import GroupView

RESYNC = 2.0  # seconds: every group is looked at again this often in a small cluster
RESYNC_RATE = 100.0  # groups a second the rotation looks at, once RESYNC is not enough
RESYNC_MAX = 10.0  # seconds: the longest a group waits to be looked at again, at any size


def resync_period(count: int) -> float:
    """Within how many seconds the rotation looks at every one of `count` groups."""
    return min(RESYNC_MAX, max(RESYNC, count / RESYNC_RATE))


def settled(view: GroupView) -> bool:
    """Nothing to do for the group and nothing unsure about it, as observed."""
    states = {r.state for r in view.resources}
    if view.mode == "run":
        return states <= {State.RUNNING}
    if view.mode == "stop":
        return states <= {State.STOPPED}
    return states <= {State.RUNNING, State.STOPPED}  # keep: waits for its placement


@dataclass
class Rotation:
    """The periodic resync, spread over turns: each turn takes the next groups by name,
    as many as the time since the last turn is worth, so that every group comes round
    within `resync_period` however often turns run. A name cursor, not an index, so that
    groups added or deleted do not make it skip others."""

    cursor: str = ""
    owed: float = 0.0  # groups owed to the rotation, fractions carried between turns
    last: float | None = None

    def take(self, names: Sequence[str], now: float) -> list[str]:
        """The next groups of `names` (sorted) that are due, at monotonic time `now`."""
        elapsed = 0.0 if self.last is None else max(0.0, now - self.last)
        self.last = now
        if not names:
            self.owed = 0.0
            return []
        self.owed = min(
            float(len(names)), self.owed + len(names) * elapsed / resync_period(len(names))
        )
        count = int(self.owed)
        if count == 0:
            return []
        self.owed -= count
        start = bisect.bisect_right(names, self.cursor)
        taken = [names[(start + i) % len(names)] for i in range(count)]
        self.cursor = taken[-1]
        return taken


@dataclass
class Tracker:
    """What a reconciler remembers of each group between turns to decide which are due.

    `inputs` are the objects a group's last look depended on (its ResourceGroup object and
    placement record), compared by identity."""

    rotation: Rotation = field(default_factory=Rotation)
    _inputs: dict[str, tuple[object, ...]] = field(default_factory=dict)
    _unsettled: set[str] = field(default_factory=set)
    _poked: set[str] = field(default_factory=set)
    _taken: set[str] = field(default_factory=set)  # due in a turn that has not completed
    _liveness: Hashable = None

    def poke(self, name: str) -> None:
        """Look at this group in the next turn."""
        self._poked.add(name)

    def due(
        self,
        inputs: Mapping[str, tuple[object, ...]],
        liveness: Hashable,
        now: float,
    ) -> set[str]:
        """The groups of `inputs` (by name, in name order) to look at in this turn.
        `liveness`: this node's serving lease and heartbeat view, compared by equality."""
        names = list(inputs)
        rotating = self.rotation.take(names, now)
        # Pokes that arrive while the turn runs are for the next one.
        poked, self._poked = self._poked, set()
        if liveness != self._liveness:
            due = set(names)
        else:
            due = set(rotating) | poked | self._taken | self._unsettled
            for name, now_inputs in inputs.items():
                seen = self._inputs.get(name)
                if seen is None or any(a is not b for a, b in zip(seen, now_inputs, strict=True)):
                    due.add(name)
            due.intersection_update(inputs)
        # Kept until `looked`: a turn that fails half-way looks at them again.
        self._taken = due
        return due

    def looked(
        self,
        inputs: Mapping[str, tuple[object, ...]],
        liveness: Hashable,
        views: Iterable[GroupView],
        unsettled: Iterable[str] = (),
    ) -> None:
        """After a turn that completed: `views` were observed with `inputs` (every group's,
        also those not looked at); `unsettled` must be looked at again whatever they
        showed (failed actions, writes that did not land)."""
        self._liveness = liveness
        self._taken = set()
        for view in views:
            self._inputs[view.name] = inputs[view.name]
            if settled(view):
                self._unsettled.discard(view.name)
            else:
                self._unsettled.add(view.name)
        self._unsettled.update(n for n in unsettled if n in inputs)
        for name in [n for n in self._inputs if n not in inputs]:
            del self._inputs[name]  # deleted: a group created again is new
            self._unsettled.discard(name)

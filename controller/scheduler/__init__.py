"""Vigil's scheduler: a pure function from specs and cluster state to a placement.

    placements = schedule(groups, nodes, failures=..., current=..., now=...)
    changes = diff_placements(current, placements, start_order(groups))

Contract with the caller (the controller's adapter from the API models):

- A node that stopped answering but is not yet fenced is ``NodeState(alive=False,
  fenced_pending=True)``; its groups are held (DecisionStatus.AWAITING_FENCING, node = that node)
  and never started elsewhere. Only once fenced is it ``alive=False, fenced_pending=False``
  ("dead"), and its groups fail over.
- ``Group.failure_timeout`` is seconds, None = never forget (the API's ``0s``).
- Stickiness is a bonus, as Pacemaker's resource-stickiness: a group leaves an eligible
  node only for one scoring more than ``stickiness`` above it (or for an ``ha move``, an
  anti-colocation clash or a colocated partner that cannot run there).
- A group that uses a replicated volume (``Group.volumes``) runs only on a node that holds
  a replica whose data may be promoted (``volumes.py``, docs/safety.md); ``volumes`` gives
  each volume's replicas, their last reports and the outdate record.
- Rerunning ``schedule`` with its own result as ``current`` changes nothing (no flapping).
"""

from controller.scheduler.diff import PlacementChange, PlacementChangeKind, diff_placements
from controller.scheduler.model import (
    Decision,
    DecisionStatus,
    Failure,
    Group,
    Move,
    NodeState,
    ReplicaReport,
    SchedulerInputError,
    VolumeFacts,
)
from controller.scheduler.order import DependencyCycleError, start_order, stop_order
from controller.scheduler.schedule import schedule
from controller.scheduler.snapshot import validate

__all__ = [
    "Decision",
    "DecisionStatus",
    "DependencyCycleError",
    "Failure",
    "Group",
    "Move",
    "NodeState",
    "PlacementChange",
    "PlacementChangeKind",
    "ReplicaReport",
    "SchedulerInputError",
    "VolumeFacts",
    "diff_placements",
    "schedule",
    "start_order",
    "stop_order",
    "validate",
]

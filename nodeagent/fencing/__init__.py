"""Node-side fence devices: power a node off (and on) through its BMC, a fence agent or
a command, verified; and the watchdog a node arms to fence itself.

The one entry point is `run_fence_action` (dispatch.py); the leader's fencing decides
when and whom to fence and records the outcomes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nodeagent.fencing.dispatch import run_fence_action

__all__ = ["run_fence_action"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the liveness process imports nodeagent.fencing.watchdog, and
    # must not pay for the dispatcher's pydantic models and BMC clients (0.14 s, megabytes
    # of heap in a process kept small for its garbage collections).
    if name == "run_fence_action":
        from nodeagent.fencing.dispatch import run_fence_action

        return run_fence_action
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Node-side fence devices: power a node off (and on) through its BMC, a fence agent or
a command, verified; and the watchdog a node arms to fence itself.

The one entry point is `run_fence_action` (dispatch.py); the leader's fencing decides
when and whom to fence and records the outcomes.
"""

from nodeagent.fencing.dispatch import run_fence_action

__all__ = ["run_fence_action"]

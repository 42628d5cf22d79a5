"""CPU priority for the agent's processes, so that heartbeats flow when the node is saturated.

A node whose CPU is pegged by its workload must not miss heartbeats and be declared
lost: corosync runs with SCHED_RR for the same reason. Only the liveness process gets the
real-time class (`make_realtime`, called in it): it mostly sleeps, so that costs the
workload nothing. The control plane can be busy for seconds (a big apply): at real-time
priority it would starve etcd and the services on its core, so it runs at nice -10
(`raise_priority`), ahead of a busy workload but under the kernel's fair scheduler.
Both calls act on the calling thread only, and neither is passed on to what it starts.
"""

from __future__ import annotations

import contextlib
import os

NICE = -10


def make_realtime(priority: int = 10) -> str:
    """Switch this process to SCHED_RR at `priority`, else to nice -10.

    Returns a sentence saying what was done, for the agent's start-up log. Never raises:
    running without priority is degraded, not fatal.
    """
    sched_rr = getattr(os, "SCHED_RR", None)
    if sched_rr is not None and hasattr(os, "sched_setscheduler"):
        try:
            low, high = os.sched_get_priority_min(sched_rr), os.sched_get_priority_max(sched_rr)
            prio = min(max(priority, low), high)
            # RESET_ON_FORK: the services the agent starts (and etcd) run at normal
            # priority; a busy service must never inherit the power to starve the node.
            flags = sched_rr | getattr(os, "SCHED_RESET_ON_FORK", 0)
            os.sched_setscheduler(0, flags, os.sched_param(prio))
            return f"scheduling: SCHED_RR priority {prio} (real-time, as corosync)"
        except OSError as err:
            reason = f"SCHED_RR refused ({err.strerror or err})"
    else:
        reason = "SCHED_RR is not available on this platform"
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if current > NICE:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
        return f"scheduling: {reason}; running at nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    except OSError as err:
        return (
            f"scheduling: {reason}; nice {NICE} refused too ({err.strerror or err}): "
            "heartbeats may be late under CPU saturation; run the agent as root "
            "or grant CAP_SYS_NICE"
        )


def raise_priority() -> str:
    """Nice -10 for the calling thread (the control plane), reset to 0 for the threads and
    processes it starts (services, etcd, worker threads). Never raises."""
    reset = getattr(os, "SCHED_RESET_ON_FORK", 0)
    other = getattr(os, "SCHED_OTHER", None)
    if reset and other is not None and hasattr(os, "sched_setscheduler"):
        # Refused: only the reset for children is lost; the nice value below still applies.
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, other | reset, os.sched_param(0))
    try:
        if os.getpriority(os.PRIO_PROCESS, 0) > NICE:
            os.setpriority(os.PRIO_PROCESS, 0, NICE)
        return f"control plane at nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    except OSError as err:
        return f"control plane at normal priority: nice {NICE} refused ({err.strerror or err})"

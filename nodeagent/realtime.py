"""Give the agent CPU priority so heartbeats keep flowing when the node is saturated.

A node whose CPU is pegged by its workload must not miss heartbeats and be declared
lost: corosync runs with SCHED_RR for the same reason. The agent mostly sleeps, so a
real-time class costs the workload nothing in the steady state.
"""

from __future__ import annotations

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

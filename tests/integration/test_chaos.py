"""The fault campaign of tests/chaos/, short: about thirty faults, every kind several times.

Injected one at a time at random moments into a three-node lab cluster running three
groups, under independent observers of every node's addresses and service processes.
No group may ever be active on two nodes, and the cluster must converge after each heal.
The long run (`bash scripts/run-chaos --faults 200`) is reported in the issue notes.
"""

from __future__ import annotations

import sys

import pytest

from tests.chaos.campaign import run_campaign
from tests.chaos.faults import KINDS
from tests.chaos.report import summarize, table

from .cluster.conftest import needs_root

pytestmark = [pytest.mark.slow, needs_root]


def test_thirty_three_faults_never_run_a_group_twice_and_always_converge() -> None:
    results, before, observers = run_campaign(len(KINDS) * 3, seed=20261204)
    rows = summarize(results)
    sys.stderr.write("\n" + table(rows) + f"observers: {observers}\n")
    assert {r.kind for r in results} == set(KINDS)
    assert before == []
    dual = [(r.index, r.kind, r.target, d) for r in results for d in r.dual_active]
    assert dual == [], f"a group was active on two nodes: {dual}"
    stuck = [(r.index, r.kind, r.target, r.detail, r.trace[-3:]) for r in results
             if r.converged_after is None]  # fmt: skip
    assert stuck == [], f"the cluster did not converge after: {stuck}"
    # The observers were not blind: a round every 20 ms, none stalled for two seconds.
    assert observers["vip_longest_interval_s"] < 2.0

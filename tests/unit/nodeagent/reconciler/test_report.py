"""The event of each reconciler action (reconciler/report.py action_event): a volume's
start and stop are its promotion and demotion, a failed stop is a Warning, and each names
the node that acted."""

from __future__ import annotations

import pytest

from nodeagent.reconciler.report import action_event


@pytest.mark.parametrize(
    ("kind", "verb", "reason", "words"),
    [
        ("ip", "start", "Started", "ip vip started on n1"),
        ("service", "stop", "Stopped", "service vip stopped on n1"),
        ("volume", "start", "Promoted", "volume vip promoted to Primary on n1"),
        ("volume", "stop", "Demoted", "volume vip demoted to Secondary on n1"),
    ],
)
def test_each_action_has_its_reason(kind: str, verb: str, reason: str, words: str) -> None:
    event = action_event("n1", "web", kind, "vip", verb)
    assert (event.kind, event.name, event.reason, event.type) == (
        "ResourceGroup",
        "web",
        reason,
        "Normal",
    )
    assert event.message == words
    assert event.source["component"] == "agent" and event.source["node"] == "n1"
    assert event.source_label == "agent/n1"


def test_a_failed_stop_is_a_warning_with_the_error() -> None:
    event = action_event("n2", "pg", "filesystem", "data", "stop", "umount: target is busy")
    assert (event.reason, event.type) == ("StopFailed", "Warning")
    assert event.message == "stop of filesystem data on n2 failed: umount: target is busy"

"""The etcd member's supervisor: how long it waits before restarting a crashed etcd."""

from __future__ import annotations

from nodeagent.etcd_member import Backoff


def test_backoff_doubles_caps_and_resets() -> None:
    b = Backoff(initial=0.5, maximum=4.0, stable_after=60.0)
    assert [b.delay(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.delay(120.0) == 0.5  # ran stably: start over

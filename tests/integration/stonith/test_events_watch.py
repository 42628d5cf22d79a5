"""`ha events --watch` follows a failover as it happens, on a real three-node lab with
fencing through its BMCs: the node running a group loses power; the watch, started
before, prints the fence (requested, done, verified, by the controller on the leader's
node), the new placement, and the survivor's starts, each with its source; after the
lost node is back, `ha move` prints the operator's change (source ha), the survivor's
stops and the returning node's starts. Ctrl-C then ends the watch with status 0."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from typing import Any

import pytest

from lab.cluster import HA, VigilLab
from lab.observer import VipObserver
from tests.integration.cluster.conftest import needs_root
from tests.integration.cluster.helpers import wait_until

from .conftest import explained, needs_ipmi_sim

pytestmark = [pytest.mark.slow, needs_root, needs_ipmi_sim]
Event = dict[str, Any]


class Watch:
    """`ha events --watch -o json` in the client namespace, its lines read as they come."""

    def __init__(self, lab: VigilLab) -> None:
        self.proc = lab.lab.popen_in(
            "client",
            [HA, "--config", str(lab.client_config), "events", "--watch", "-o", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.events.append(json.loads(line))  # one JSON object per line, or fail

    def seen(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: the exit status and what it wrote on stderr."""
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=20)
        self._reader.join(timeout=5)
        return self.proc.returncode, err

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def source(event: Event) -> str:
    src = event["source"]
    return f"{src['component']}/{src['node']}" if src.get("node") else str(src["component"])


def index(events: list[Event], reason: str, where: str, text: str = "") -> int | None:
    """The first event with this reason from this source whose message holds `text`."""
    for i, event in enumerate(events):
        if event["reason"] == reason and source(event) == where and text in event["message"]:
            return i
    return None


def test_the_watch_follows_a_fenced_failover_and_a_move(
    fenced3: tuple[VigilLab, VipObserver],
) -> None:
    lab, observer = fenced3
    with explained(lab):
        assert lab.apply(lab.web_group()).code == 0
        active = lab.wait_running("web", 30)
        watch = Watch(lab)
        try:
            # The past hour's events come first: once the start on `active` is printed,
            # the watch has listed, and it follows from that listing's revision on.
            wait_until(
                "the watch prints the past",
                lambda: index(watch.seen(), "Started", f"agent/{active}", "ip "),
                30,
            )
            before = len(watch.seen())
            lab.lab.kill(active)
            survivor = lab.wait_running("web", 60, not_on=active)

            def recovered() -> bool:
                new = watch.seen()[before:]
                return all(
                    index(new, "Started", f"agent/{survivor}", kind) is not None
                    for kind in ("ip ", "service ")
                )

            wait_until("the watch prints the starts on the survivor", recovered, 30)
            new = watch.seen()[before:]
            leader = lab.status()["leader"]
            assert leader != active
            for reason in ("FenceRequested", "FenceDone", "FenceVerified"):
                at = index(new, reason, f"controller/{leader}", active)
                assert at is not None, (reason, new)
                assert new[at]["involvedObject"] == {"kind": "Node", "name": active}
            placed = index(new, "Placed", f"controller/{leader}", survivor)
            assert placed is not None, new
            assert new[placed]["involvedObject"] == {"kind": "ResourceGroup", "name": "web"}
            started = index(new, "Started", f"agent/{survivor}")
            verified = index(new, "FenceVerified", f"controller/{leader}")
            assert started is not None and verified is not None
            assert verified < placed < started  # fenced, then placed, then started
            # Nothing from the lost node: it had no power to write with.
            assert not [e for e in new if e["source"].get("node") == active]

            lab.lab.power_on(active)
            lab.wait_ready(90)
            leader = lab.status()["leader"]  # may have changed while active was away
            mark = len(watch.seen())
            assert lab.ha("move", "web", active).code == 0
            lab.wait_running("web", 60, not_on=survivor)

            def moved_back() -> bool:
                new = watch.seen()[mark:]
                return all(
                    index(new, "Started", f"agent/{active}", kind) is not None
                    for kind in ("ip ", "service ")
                )

            wait_until("the watch prints the starts after the move", moved_back, 30)
            new = watch.seen()[mark:]
            updated = index(new, "Updated", "ha", "by ha move")
            assert updated is not None, new
            stopping = index(new, "Stopping", f"controller/{leader}", survivor)
            assert stopping is not None, new
            stops = [index(new, "Stopped", f"agent/{survivor}", k) for k in ("ip ", "service ")]
            assert None not in stops, new
            first_start = index(new, "Started", f"agent/{active}")
            assert first_start is not None
            assert updated < stopping < max(s for s in stops if s is not None) < first_start

            code, err = watch.interrupt()
            assert code == 0, err
            assert "Traceback" not in err, err
        finally:
            watch.close()
    assert observer.holders() <= {active}

"""Client-side measurements for cluster tests: a poller of the VIP and status helpers."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lab.cluster import VigilLab
from lab.observer import VipObserver

# Runs in the client namespace; CLOCK_MONOTONIC is shared with the test process (the lab
# makes no time namespace), so its timestamps compare with the test's.
_POLL = """
import socket, sys, time
address, interval = sys.argv[1], float(sys.argv[2])
while True:
    t = time.monotonic()
    s = socket.socket()
    s.settimeout(0.3)
    try:
        s.connect((address, 80))
        s.sendall(b"GET / HTTP/1.0\\r\\n\\r\\n")
        body = s.recv(200).split(b"\\r\\n\\r\\n")[-1].decode().strip()
        print(f"{t:.4f} {time.monotonic() - t:.4f} {body or '-'}", flush=True)
    except OSError as e:
        print(f"{t:.4f} {time.monotonic() - t:.4f} ERR {type(e).__name__}", flush=True)
    finally:
        s.close()
    time.sleep(max(0.0, interval - (time.monotonic() - t)))
"""


@dataclass
class Answer:
    time: float
    node: str | None  # None: no answer
    took: float = 0.0
    error: str = ""


class VipPoller:
    """GET the VIP from the client every `interval` s in a background process."""

    def __init__(self, lab: VigilLab, address: str, interval: float = 0.05) -> None:
        self.lab = lab
        self.address = address
        self.interval = interval
        self.proc: subprocess.Popen[str] | None = None
        self.answers: list[Answer] = []

    def __enter__(self) -> VipPoller:
        self.proc = self.lab.lab.popen_in(
            "client",
            [sys.executable, "-S", "-c", _POLL, self.address, str(self.interval)],
            stdout=subprocess.PIPE,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Answer]:
        if self.proc is None:
            return self.answers
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        self.proc = None
        for line in out.splitlines():
            t, took, body = line.split(" ", 2)
            failed = body.startswith("ERR")
            self.answers.append(
                Answer(float(t), None if failed else body, float(took), body[4:] if failed else "")
            )
        return self.answers

    def max_gap(self, start: float | None = None) -> float:
        """The longest time between two successful answers (from `start` on)."""
        ok = [a.time for a in self.answers if a.node and (start is None or a.time >= start)]
        return max((b - a for a, b in itertools.pairwise(ok)), default=float("inf"))

    def first_from(self, after: float, not_node: str) -> Answer | None:
        return next(
            (a for a in self.answers if a.time > after and a.node and a.node != not_node), None
        )


def group(lab: VigilLab, name: str) -> dict[str, Any]:
    return next(g for g in lab.status()["groups"] if g["name"] == name)


def node_state(lab: VigilLab, node: str) -> str:
    return str(next(n["state"] for n in lab.status()["nodes"] if n["name"] == node))


def wait_until(what: str, check: Any, within: float, every: float = 0.2) -> Any:
    """Poll `check()` until it returns something truthy; that value."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a status read during an outage: try again
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {within:g} s (last: {last!r})")


def watched_lab(lab: VigilLab) -> Iterator[tuple[VigilLab, VipObserver]]:
    """Bring `lab` up under a VipObserver of its VIP, for a fixture to yield from; the
    teardown fails the test if the VIP was ever on two powered nodes at once
    (docs/safety.md)."""
    lab.up()  # tears itself down if it fails
    observer = VipObserver(lab, lab.vip())
    try:
        observer.start()
        yield lab, observer
    finally:
        observer.stop()
        if observer.history():
            sys.stderr.write(
                f"\nobserver {observer.address}: {len(observer.samples)} rounds, longest "
                f"interval {observer.max_interval() * 1000:.0f} ms, "
                f"{len(observer.unconfirmed)} unconfirmed, holders over time: "
                + ", ".join(
                    f"{s.time:.2f}:{','.join(sorted(s.holders)) or '-'}" for s in observer.history()
                )
                + "\n"
            )
        lab.down()
    assert observer.overlaps == [], (
        f"{observer.address} was on two powered nodes at once: {observer.overlaps[:5]}"
    )

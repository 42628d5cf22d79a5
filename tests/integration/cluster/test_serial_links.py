"""Serial heartbeat links between two lab nodes (a pty null-modem), beside the network.

- The UDP heartbeats cut while the serial line lives: nothing fails over, nobody is lost,
  each node posts LinkDegraded and `ha status` shows the silent link and for how long;
  healed, the link is heard again (LinkRecovered).
- Garbage, torn frames and replayed frames on the line (a relay the test drives), with
  the serial line as the only heartbeat path: dropped and counted, nothing fails over;
  the line cut and restored, and restarted (as socat dying): it recovers.

Two nodes, quorum majority: each node's serving lease needs the other's acknowledgement,
so a serial link that did not carry heartbeats would stop the group (and declare the
peer lost) as soon as the UDP heartbeats are cut.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.serial_line import RelayLine
from lab.testing import unique_lab_name
from nodeagent.heartbeat.framing import HEADER, SYNC, FrameDecoder, encode_frame
from nodeagent.heartbeat.packet import PacketType

from .conftest import needs_root
from .helpers import wait_until

pytestmark = [
    pytest.mark.slow,
    needs_root,
    pytest.mark.skipif(sys.platform != "linux", reason="ptys and namespaces"),
]

A, B = "n1", "n2"


@contextlib.contextmanager
def serial_lab(tmp_path: Path, line: str) -> Iterator[VigilLab]:
    lab = VigilLab(
        unique_lab_name("vser"), 2, disk_root=tmp_path / "disks", serial=(A, B), serial_line=line
    )
    lab.up()  # tears itself down (the line too) if it fails
    observer = VipObserver(lab, lab.vip())
    try:
        observer.start()
        yield lab
    finally:
        observer.stop()
        lab.down()
    assert observer.overlaps == [], f"the VIP was on two nodes at once: {observer.overlaps[:5]}"


def heard(lab: VigilLab) -> dict[str, dict[str, dict[str, str]]]:
    return {n["name"]: n["links"] for n in lab.status()["nodes"]}


def both_links_up(lab: VigilLab) -> bool:
    up = {"cluster": "up", "serial0": "up"}
    return heard(lab) == {A: {B: up}, B: {A: up}}


def down_links(lab: VigilLab) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = lab.status()["links"]
    return rows


def degraded(lab: VigilLab, link: str) -> list[dict[str, Any]]:
    """The LinkDegraded rows of `link`, once both directions have one."""
    rows = [r for r in down_links(lab) if r["link"] == link]
    ok = sorted((r["node"], r["peer"], r["condition"]) for r in rows) == [
        (A, B, "LinkDegraded"),
        (B, A, "LinkDegraded"),
    ]
    return rows if ok else []


def events(lab: VigilLab, reason: str) -> list[dict[str, Any]]:
    result = lab.ha("events", "-o", "json", timeout=15)
    found: list[dict[str, Any]] = []
    if result.code == 0:
        found = [e for e in json.loads(result.out) if e["reason"] == reason]
    return found


def link_condition(lab: VigilLab, node: str) -> dict[str, Any] | None:
    """The Node's LinkDegraded condition, as `ha get node NODE -o json` shows it."""
    result = lab.ha("get", "node", node, "-o", "json", timeout=15)
    if result.code != 0:
        return None
    conditions = json.loads(result.out).get("status", {}).get("conditions", [])
    found: dict[str, Any] | None = next(
        (c for c in conditions if c["type"] == "LinkDegraded"), None
    )
    return found


def hold(lab: VigilLab, active: str, seconds: float) -> None:
    """For `seconds`: the group runs where it ran, and no node is lost or not ready."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status = lab.status()
        web = next(g for g in status["groups"] if g["name"] == "web")
        assert (web["running"], web["phase"], web["placed"]) == (active, "Running", active), web
        states = {n["name"]: n["state"] for n in status["nodes"]}
        assert states == {A: "Ready", B: "Ready"}, states
        assert all(n["serving"] for n in status["nodes"]), status["nodes"]
        time.sleep(0.3)


def cut_udp_heartbeats(lab: VigilLab) -> None:
    lab.lab.block(A, B, "heartbeat")
    lab.lab.block(B, A, "heartbeat")


def test_udp_heartbeats_cut_the_serial_link_keeps_the_cluster_whole(tmp_path: Path) -> None:
    with serial_lab(tmp_path, "socat") as lab:
        assert lab.apply(lab.web_group()).code == 0
        active = lab.wait_running("web", 30)
        wait_until("both links heard both ways", lambda: both_links_up(lab), 20)

        cut_udp_heartbeats(lab)
        cut_at = time.time()
        rows = wait_until("the UDP link degraded", lambda: degraded(lab, "cluster"), 10)
        assert all(r["liveLinks"] == ["serial0"] for r in rows), rows
        # Three deadtimes and more: nothing moves, nobody is lost.
        hold(lab, active, 4.0)
        later = {(r["node"], r["peer"]): r for r in degraded(lab, "cluster")}
        for r in later.values():
            # "silent for X s", truthfully: from about when the cut was made.
            assert time.time() - cut_at - 1.5 <= r["silentFor"] <= time.time() - cut_at + 0.5
        text = lab.ha("status").out
        assert f"LinkDegraded: link cluster from {A} to {B}: silent for" in text, text
        assert "(heard on serial0)" in text, text
        posted = wait_until("LinkDegraded events", lambda: events(lab, "LinkDegraded"), 10)
        assert {e["involvedObject"]["name"] for e in posted} == {A, B}, posted
        assert all("heartbeat link cluster" in e["message"] for e in posted), posted
        for node, peer in ((A, B), (B, A)):
            condition = wait_until(
                f"{node}'s LinkDegraded condition",
                lambda n=node: (c := link_condition(lab, n)) and c["status"] == "True" and c,
                10,
            )
            assert f"cluster to {peer}" in condition["message"], condition

        lab.lab.heal()
        wait_until("the UDP link heard again", lambda: down_links(lab) == [], 10)
        assert both_links_up(lab)
        recovered = wait_until("LinkRecovered events", lambda: events(lab, "LinkRecovered"), 10)
        assert {e["involvedObject"]["name"] for e in recovered} == {A, B}
        for node in (A, B):
            wait_until(
                f"{node}'s LinkDegraded condition False",
                lambda n=node: (c := link_condition(lab, n)) and c["status"] == "False",
                10,
            )
        assert lab.where("web") == active


def frames(captured: bytes) -> list[bytes]:
    """The whole frames in a stretch of the line, decoded as a node would."""
    return [encode_frame(p) for p in FrameDecoder().feed(captured)]


def is_heartbeat(frame: bytes) -> bool:
    return frame[HEADER + 5] == PacketType.HEARTBEAT  # the packet's type byte


def noise(rng: random.Random) -> bytes:
    junk = bytearray(rng.randbytes(rng.randint(1, 80)))
    if rng.random() < 0.5:  # a false start of a frame inside the garbage
        at = rng.randint(0, len(junk))
        junk[at:at] = SYNC + bytes([rng.randint(0, 5), rng.randint(0, 255)]) + b"VGHB"
    return bytes(junk)


def counters(lab: VigilLab) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {
        node: c.get("serial0", {}) for node, c in lab.status()["linkCounters"].items()
    }
    return counts


def test_garbage_torn_and_replayed_frames_are_dropped_and_counted(tmp_path: Path) -> None:
    rng = random.Random(7)
    with serial_lab(tmp_path, "relay") as lab:
        line = lab.line
        assert isinstance(line, RelayLine)
        assert lab.apply(lab.web_group()).code == 0
        active = lab.wait_running("web", 30)
        wait_until("both links heard both ways", lambda: both_links_up(lab), 20)
        # The serial line becomes the only heartbeat path: a frame lost to bad framing
        # shows as a silent peer.
        cut_udp_heartbeats(lab)
        wait_until("the UDP link degraded", lambda: degraded(lab, "cluster"), 10)
        recorded = [bytes(line.sent[0][-4000:]), bytes(line.sent[1][-4000:])]
        assert all(len(frames(r)) >= 5 for r in recorded)

        # What each node must count at least: every garbage and torn byte dropped, every
        # replayed heartbeat refused as a replay (a replayed ACK is harmless and
        # uncounted: it acknowledges nothing new).
        junk = {A: 0, B: 0}
        replays = {A: 0, B: 0}
        end = time.monotonic() + 5.0
        rounds = 0
        while time.monotonic() < end:
            rounds += 1
            for toward, node in ((0, A), (1, B)):
                old = frames(recorded[1 - toward])  # what the other end sent a while ago
                torn = rng.choice(old)
                torn = torn[: rng.randint(1, len(torn) - 1)]
                beats = [f for f in old if is_heartbeat(f)]
                again = [rng.choice(beats), rng.choice(old)]  # a heartbeat, and anything
                bad = [noise(rng), torn, noise(rng)]
                line.inject(toward, b"".join([bad[0], bad[1], again[0], bad[2], again[1]]))
                junk[node] += sum(len(b) for b in bad)
                replays[node] += sum(is_heartbeat(f) for f in again)
            time.sleep(0.1)
            if rounds % 5 == 0:  # `ha status` takes a while: inject more often than that
                web = next(g for g in lab.status()["groups"] if g["name"] == "web")
                assert (web["running"], web["phase"]) == (active, "Running"), web

        def counted() -> dict[str, dict[str, int]] | None:
            c = counters(lab)
            ok = all(
                c.get(n, {}).get("dropped_bytes", 0) >= junk[n]
                and c.get(n, {}).get("replays", 0) >= replays[n]
                and c.get(n, {}).get("bad_frames", 0) > 0
                for n in (A, B)
            )
            return c if ok else None

        found = wait_until(
            f"the faults counted ({junk} junk bytes, {replays} replays)", counted, 15
        )
        sys.stderr.write(f"\ninjected junk {junk}, replays {replays}; serial0 counters: {found}\n")
        # Nothing lost meanwhile: serial0 never went silent, and the cluster is whole.
        assert [r["link"] for r in down_links(lab)] == ["cluster", "cluster"]
        hold(lab, active, 1.0)

        # The cable cut and restored, with the network back: serial0 is degraded, then
        # recovers.
        lab.lab.heal()
        wait_until("the UDP link heard again", lambda: down_links(lab) == [], 10)
        line.pause()
        wait_until("the serial link degraded", lambda: degraded(lab, "serial0"), 10)
        line.pause(False)
        wait_until("the serial link heard again", lambda: down_links(lab) == [], 10)
        # socat dying and coming back (new ptys behind the links): both ends reopen.
        line.restart()
        reopened = wait_until(
            "both ends reopened",
            lambda: all(c.get("reopens", 0) >= 1 for c in counters(lab).values()) and counters(lab),
            15,
        )
        assert set(reopened) == {A, B}
        wait_until("both links heard both ways", lambda: both_links_up(lab), 10)
        hold(lab, active, 1.0)

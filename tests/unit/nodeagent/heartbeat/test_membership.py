from __future__ import annotations

import math

import pytest

from nodeagent.heartbeat.membership import Membership, Rejected
from nodeagent.heartbeat.packet import AckBody, Codec, Packet, PacketType, PeerReport
from nodeagent.heartbeat.timing import RHO, HeartbeatTiming
from tests.unit.nodeagent.heartbeat.sim import Sim

T = HeartbeatTiming(keepalive=0.2, warntime=0.6, deadtime=1.0, initdead=3.0)
TUNED = HeartbeatTiming(keepalive=0.05, warntime=0.15, deadtime=0.25, initdead=1.0)


def cut(*nodes: str, after: float, one_way: tuple[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A link model: packets to/from `nodes` (or only src->dst of `one_way`) drop after `after`."""

    def model(src: str, dst: str, t: float) -> tuple[bool, float]:
        if t < after:
            return True, 0.0005
        if one_way is not None:
            return (src, dst) != one_way, 0.0005
        return not (src in nodes or dst in nodes), 0.0005

    return model


def test_timing_constants_and_validation() -> None:
    assert T.lease == pytest.approx(1.0 / RHO)
    assert T.stop_margin == pytest.approx(0.1)
    assert HeartbeatTiming(0.5, 1, 5, 30).stop_margin == 0.2
    with pytest.raises(ValueError, match="warntime"):
        HeartbeatTiming(keepalive=0.2, warntime=1.0, deadtime=1.0, initdead=30)
    with pytest.raises(ValueError, match="initdead"):
        HeartbeatTiming(keepalive=0.2, warntime=0.6, deadtime=1.0, initdead=0.5)


@pytest.mark.parametrize("timing", [T, TUNED])
@pytest.mark.parametrize("n", [3, 5])
def test_steady_state_renews_the_lease_every_keepalive(timing: HeartbeatTiming, n: int) -> None:
    names = [f"n{i}" for i in range(n)]
    sim = Sim(timing, names)
    sim.run_until(5 * timing.keepalive)
    for _ in range(50):
        sim.run_until(sim.now + timing.keepalive * 0.37)
        for name, node in sim.nodes.items():
            now = node.local(sim.now)
            assert node.m.serving(now), name
            # Renewed within the last keepalive plus a round trip.
            assert node.m.lease_expiry(now) - now >= timing.lease - timing.keepalive - 0.01
            status = node.m.peer_status(now)
            assert {s.state for s in status.values()} == {"up"}
            assert all(s.links["eth0"] < timing.keepalive + 0.01 for s in status.values())
            assert not any(node.m.lost(p, now) for p in node.m.peers)
    assert not sim.rejected


def isolation_times(
    sim: Sim, victim: str, start: float, end: float
) -> tuple[float, dict[str, float]]:
    stop_at = math.nan
    lost_at: dict[str, float] = {}

    def observe(s: Sim, name: str, t: float) -> None:
        nonlocal stop_at
        node = s.nodes[name]
        if name == victim and math.isnan(stop_at) and not node.m.serving(node.local(t)):
            stop_at = t
        if name != victim and name not in lost_at and node.m.lost(victim, node.local(t)):
            lost_at[name] = t

    sim.on_event = observe
    sim.run_until(end)
    return stop_at, lost_at


@pytest.mark.parametrize("timing", [T, TUNED])
@pytest.mark.parametrize("n", [3, 5])
def test_isolated_node_stops_before_anyone_declares_it_lost(
    timing: HeartbeatTiming, n: int
) -> None:
    names = [f"n{i}" for i in range(n)]
    # Worst drift: the victim's clock is slow, the observers' fast.
    rates = {name: RHO for name in names} | {"n0": 1.0}
    sim = Sim(timing, names, link=cut("n0", after=1.0), rates=rates)
    sim.run_until(1.0)
    assert sim.nodes["n0"].m.serving(sim.local("n0"))
    stop_at, lost_at = isolation_times(sim, "n0", 1.0, 1.0 + 3 * timing.deadtime)
    assert set(lost_at) == set(names[1:])
    first_lost = min(lost_at.values())
    margin = first_lost - stop_at
    print(f"n={n} deadtime={timing.deadtime}: stop at +{stop_at - 1:.3f}s, lost at "
          f"+{first_lost - 1:.3f}s, margin {margin * 1000:.0f} ms")  # fmt: skip
    assert margin >= timing.stop_margin * 0.9
    # Detection within deadtime plus one keepalive (the reporter's next heartbeat).
    assert first_lost - 1.0 <= timing.deadtime + 2 * timing.keepalive
    # The majority keeps its leases.
    for name in names[1:]:
        assert sim.nodes[name].m.serving(sim.local(name))
    assert "n0" in sim.nodes["n1"].m.why_lost("n0", sim.local("n1"))
    assert sim.nodes["n1"].m.why_lost("n0", sim.local("n1")).startswith("n0 is lost")


def test_minority_partition_of_five_stops_majority_keeps_serving() -> None:
    names = [f"n{i}" for i in range(5)]

    def model(src: str, dst: str, t: float) -> tuple[bool, float]:
        side = {"n0", "n1"}
        return t < 1.0 or ((src in side) == (dst in side)), 0.001

    sim = Sim(T, names, link=model)
    sim.run_until(4.0)
    for name in names:
        assert sim.nodes[name].m.serving(sim.local(name)) == (name not in {"n0", "n1"})
    leader = sim.nodes["n2"].m
    assert leader.lost("n0", sim.local("n2")) and leader.lost("n1", sim.local("n2"))
    # The minority does not see the majority lost: it lacks n - k + 1 = 3 voters.
    assert not sim.nodes["n0"].m.lost("n2", sim.local("n0"))


def test_asymmetric_a_hears_b_but_b_not_a() -> None:
    names = ["a", "b", "c"]
    sim = Sim(T, names, link=cut(after=1.0, one_way=("a", "b")))
    sim.run_until(4.0)
    a, b, c = (sim.nodes[x].m for x in names)
    now_a, now_b, now_c = (sim.local(x) for x in names)
    assert b.peer_status(now_b)["a"].state == "dead"
    assert a.peer_status(now_a)["b"].state == "up"
    # c still hears a and says so: a is not lost, and a keeps its lease through c.
    assert not b.lost("a", now_b) and not c.lost("a", now_c)
    assert a.serving(now_a) and b.serving(now_b) and c.serving(now_c)
    assert "not lost" in b.why_lost("a", now_b)


def test_deaf_node_loses_its_lease_but_is_not_lost() -> None:
    """Everyone hears a, a hears nobody: a gets no acks, stops; nobody moves its groups."""

    def model(src: str, dst: str, t: float) -> tuple[bool, float]:
        return t < 1.0 or dst != "a", 0.001

    sim = Sim(T, ["a", "b", "c"], link=model)
    sim.run_until(4.0)
    assert not sim.nodes["a"].m.serving(sim.local("a"))
    assert not sim.nodes["b"].m.lost("a", sim.local("b"))


def test_killed_peer_is_dead_after_deadtime_and_lost() -> None:
    sim = Sim(T, ["a", "b", "c"])
    sim.run_until(1.0)
    sim.kill("c")
    sim.run_until(1.0 + T.deadtime - T.keepalive - 0.01)
    assert sim.nodes["a"].m.peer_status(sim.local("a"))["c"].state == "warn"
    sim.run_until(1.0 + T.deadtime + 0.01)
    assert sim.nodes["a"].m.peer_status(sim.local("a"))["c"].state == "dead"
    sim.run_until(1.0 + T.deadtime + T.keepalive + 0.01)
    assert sim.nodes["a"].m.lost("c", sim.local("a"))
    assert sim.nodes["a"].m.serving(sim.local("a"))


def test_peer_restart_within_deadtime_is_accepted_and_state_reset() -> None:
    sim = Sim(T, ["a", "b", "c"], auto_rejoin=True)
    sim.run_until(1.0)
    old = sim.nodes["b"].m.incarnation
    sim.kill("b")
    sim.run_until(1.3)
    sim.start("b", at=1.3)
    sim.run_until(2.0)
    a = sim.nodes["a"].m
    st = a.peer_status(sim.local("a"))["b"]
    assert st.incarnation == sim.nodes["b"].m.incarnation != old
    assert st.state == "up" and not st.refused
    assert sim.nodes["b"].m.serving(sim.local("b")) and sim.nodes["b"].m.rejoins == 0


def test_peer_back_after_deadtime_is_refused_once_then_rejoins() -> None:
    sim = Sim(T, ["a", "b", "c"], auto_rejoin=True)
    sim.run_until(1.0)
    sim.kill("b")
    sim.run_until(3.0)
    assert sim.nodes["a"].m.lost("b", sim.local("a"))
    b = sim.start("b", at=3.0).m
    sim.run_until(3.0 + T.keepalive * 3)
    assert b.rejoins == 1  # refused by a and c, so it took a fresh incarnation
    sim.run_until(4.0)
    assert b.serving(sim.local("b"))
    assert not sim.nodes["a"].m.lost("b", sim.local("a"))
    assert sim.nodes["a"].m.peer_status(sim.local("a"))["b"].refused is False


def test_link_flap_over_deadtime_without_rejoin_never_serves_again() -> None:
    def model(src: str, dst: str, t: float) -> tuple[bool, float]:
        return not (1.0 <= t < 2.5 and "a" in (src, dst)), 0.001

    sim = Sim(T, ["a", "b", "c"], link=model, auto_rejoin=False)
    sim.run_until(5.0)
    a = sim.nodes["a"].m
    assert not a.serving(sim.local("a"))
    assert sim.nodes["b"].m.peer_status(sim.local("b"))["a"].refused
    a.rejoin(sim.local("a"))
    sim.run_until(5.5)
    assert a.serving(sim.local("a"))


def manual(
    name: str = "a", members: tuple[str, ...] = ("a", "b", "c"), now: float = 100.0
) -> Membership:
    return Membership(name, list(members), T, incarnation=11, started_at=now)


def hb(sender: str, inc: int, seq: int, *reports: PeerReport) -> Packet:
    return Packet(PacketType.HEARTBEAT, sender, inc, seq, tuple(reports))


def test_heartbeat_is_acked_and_replays_rejected() -> None:
    m = manual()
    replies = m.on_packet(hb("b", 22, 5), 100.1, "eth0")
    assert replies == [Packet(PacketType.ACK, "a", 11, 0, ack=AckBody("b", 22, 5))]
    with pytest.raises(Rejected) as err:
        m.on_packet(hb("b", 22, 5), 100.2, "eth0")
    assert err.value.reason == "replay"
    with pytest.raises(Rejected):
        m.on_packet(hb("b", 22, 4), 100.2, "eth0")
    # The same sequence on a second link is that link's first packet: accepted.
    assert m.on_packet(hb("b", 22, 5), 100.2, "eth1")
    assert set(m.peer_status(100.3)["b"].links) == {"eth0", "eth1"}


def test_new_incarnation_resets_and_old_one_is_rejected() -> None:
    m = manual()
    m.on_packet(hb("b", 22, 50), 100.1, "eth0")
    m.on_packet(hb("b", 33, 1), 100.2, "eth0")  # restarted: low seq accepted
    assert m.peer_status(100.2)["b"].incarnation == 33
    with pytest.raises(Rejected) as err:
        m.on_packet(hb("b", 22, 51), 100.3, "eth0")
    assert err.value.reason == "old-incarnation"


def test_acks_build_the_lease_and_replayed_acks_do_not_extend_it() -> None:
    m = manual()
    assert not m.serving(100.0) and m.lease_expiry(100.0) == -math.inf
    p1 = m.next_heartbeat(100.0)
    p2 = m.next_heartbeat(100.2)
    assert (p1.seq, p2.seq) == (1, 2)
    ack1 = Packet(PacketType.ACK, "b", 22, 1, ack=AckBody("a", 11, 1))
    assert m.on_packet(ack1, 100.25, "eth0") == []
    assert m.lease_expiry(100.3) == pytest.approx(100.0 + T.lease)
    ack2 = Packet(PacketType.ACK, "c", 33, 1, ack=AckBody("a", 11, 2))
    m.on_packet(ack2, 100.3, "eth0")
    assert m.lease_expiry(100.3) == pytest.approx(100.2 + T.lease)  # k=2: best peer ack
    m.on_packet(ack1, 100.5, "eth0")  # replay: no effect
    assert m.lease_expiry(100.5) == pytest.approx(100.2 + T.lease)
    assert m.serving(100.2 + T.lease - T.stop_margin - 0.001)
    assert not m.serving(100.2 + T.lease - T.stop_margin)
    # An ack piggybacked in a heartbeat counts too.
    m.next_heartbeat(101.0)
    m.on_packet(hb("b", 22, 7, PeerReport("a", 11, 3, 5)), 101.01, "eth0")
    assert m.lease_expiry(101.01) == pytest.approx(101.0 + T.lease)


def test_acks_for_unsent_or_foreign_sequences_are_ignored_or_rejected() -> None:
    m = manual()
    m.next_heartbeat(100.0)
    m.on_packet(Packet(PacketType.ACK, "b", 22, 1, ack=AckBody("a", 11, 99)), 100.1, "e")
    assert m.lease_expiry(100.1) == -math.inf
    with pytest.raises(Rejected, match="previous incarnation"):
        m.on_packet(Packet(PacketType.ACK, "b", 22, 1, ack=AckBody("a", 12, 1)), 100.1, "e")
    with pytest.raises(Rejected) as err:
        m.on_packet(Packet(PacketType.ACK, "b", 22, 1, ack=AckBody("c", 11, 1)), 100.1, "e")
    assert err.value.reason == "ack-misdirected"
    with pytest.raises(Rejected) as err:
        m.on_packet(hb("zz", 1, 1), 100.1, "e")
    assert err.value.reason == "unknown-sender"
    with pytest.raises(Rejected) as err:
        m.on_packet(hb("a", 1, 1), 100.1, "e")
    assert err.value.reason == "self"


def test_initdead_unknown_then_dead_and_late_first_contact_refused() -> None:
    m = manual()
    assert m.peer_status(100.0 + T.initdead - 0.01)["b"].state == "unknown"
    assert m.heard_ages(101.0) == {"b": None, "c": None}
    assert not m.lost("b", 100.0 + T.initdead - 0.01)
    assert m.peer_status(100.0 + T.initdead)["b"].state == "dead"
    # Before initdead a first contact is acknowledged ...
    assert m.on_packet(hb("b", 22, 1), 101.0, "eth0")
    # ... after it, a first contact is refused: the peer may have been declared lost.
    assert m.on_packet(hb("c", 33, 1), 100.0 + T.initdead + 0.1, "eth0") == []
    assert m.peer_status(103.2)["c"].refused
    assert m.next_heartbeat(103.2).peers[1] == PeerReport("c", 33, 0, 100, True)


def test_never_heard_age_in_reports_includes_the_initdead_grace() -> None:
    m = manual()
    reports = {p.name: p for p in m.next_heartbeat(100.0 + T.initdead + 0.5).peers}
    assert reports["b"].heard_age_ms == round((T.deadtime + 0.5) * 1000)
    reports = {p.name: p for p in m.next_heartbeat(100.5).peers}
    assert reports["b"].heard_age_ms == 0


def test_lost_needs_reports_from_enough_members() -> None:
    m = manual()
    m.on_packet(hb("b", 22, 1), 100.1, "eth0")
    m.on_packet(hb("c", 33, 1), 100.1, "eth0")
    # a has not heard c for deadtime, but b has no report yet: 1 voter of 2 needed.
    assert not m.lost("c", 101.2)
    assert "1 of 2 other members (a)" in m.why_lost("c", 101.2)
    # b reports hearing c 0.9 s ago: the estimate (1.0 s) is not counted, only b's own word.
    m.on_packet(hb("b", 22, 2, PeerReport("c", 33, 1, 900)), 101.2, "eth0")
    assert not m.lost("c", 101.3)
    m.on_packet(hb("b", 22, 3, PeerReport("c", 33, 1, 1000)), 101.4, "eth0")
    assert m.lost("c", 101.4)
    assert "estimate" in m.why_lost("c", 101.4)
    assert not m.lost("a", 101.4) and not m.lost("nobody", 101.4)


def test_warn_state_and_next_change() -> None:
    m = manual()
    m.on_packet(hb("b", 22, 1), 101.0, "eth0")
    assert m.peer_status(101.0 + T.warntime)["b"].state == "warn"
    assert m.next_change(101.0) == pytest.approx(101.0 + T.warntime)
    assert m.next_change(101.0 + T.warntime) == pytest.approx(101.0 + T.deadtime)
    assert m.next_change(1000.0) == math.inf


def test_single_member_serves_alone_and_history_is_bounded() -> None:
    m = Membership("solo", ["solo"], T, incarnation=1, started_at=0.0)
    assert m.serving(0.0) and m.k == 1
    for i in range(10000):
        m.next_heartbeat(i * T.keepalive)
    assert len(m._sent) <= 2 * T.deadtime / T.keepalive + 1


def test_packets_from_membership_fit_the_codec() -> None:
    names = [f"node-{i:02d}-" + "x" * 50 for i in range(14)]
    m = Membership(names[0], names, T, incarnation=2**64 - 1, started_at=0.0)
    data = Codec("c", b"k").encode(m.next_heartbeat(5.0))
    assert len(data) <= 1400


def test_a_peer_heard_on_one_link_of_two_is_up_and_the_other_link_silent() -> None:
    """A peer is lost only when every link is silent: one link's silence changes neither
    its state nor the verdict, but is timed (next_change) and shown (link_silent)."""
    codec = Codec("c", b"k" * 16)
    m = Membership("b", ["a", "b"], T, incarnation=5, started_at=0.0)
    seq = 0

    def hear(link: str, now: float) -> None:
        nonlocal seq
        seq += 1
        pkt = codec.decode(codec.encode(Packet(PacketType.HEARTBEAT, "a", 9, seq)))
        m.on_packet(pkt, now, link)

    hear("cluster", 0.1)
    hear("serial0", 0.1)
    assert m.link_silent(0.2) == {"a": {"cluster": False, "serial0": False}}
    t = 0.1
    while t < 3.0:  # only the serial link carries heartbeats from here on
        t += T.keepalive
        hear("serial0", t)
        if t < 0.1 + T.deadtime:
            assert m.next_change(t) <= 0.1 + T.deadtime
    assert m.link_silent(t) == {"a": {"cluster": True, "serial0": False}}
    assert m.peer_status(t)["a"].state == "up"
    assert not m.lost("a", t)
    # Every link silent: now the peer is dead and lost.
    later = t + T.deadtime
    assert m.link_silent(later) == {"a": {"cluster": True, "serial0": True}}
    assert m.peer_status(later)["a"].state == "dead" and m.lost("a", later)


def test_two_node_survivor_keeps_its_lease_and_declares_the_peer_lost_alone() -> None:
    # Majority rules stop the survivor of two: its lease needs the dead peer's ack.
    majority = Sim(T, ["a", "b"])
    majority.run_until(1.0)
    majority.kill("b")
    majority.run_until(1.0 + T.deadtime + T.keepalive + 0.01)
    assert not majority.nodes["a"].m.serving(majority.local("a"))
    sim = Sim(T, ["a", "b"], two_node=True)
    sim.run_until(1.0)
    sim.kill("b")
    sim.run_until(1.0 + T.deadtime - T.keepalive - 0.01)
    assert not sim.nodes["a"].m.lost("b", sim.local("a"))
    sim.run_until(1.0 + T.deadtime + T.keepalive + 0.01)
    a = sim.nodes["a"].m
    assert a.lost("b", sim.local("a")) and a.serving(sim.local("a"))
    assert "1 needed" in a.why_lost("b", sim.local("a"))


def test_missed_heartbeats_are_counted_per_peer_and_link_across_incarnations() -> None:
    m = manual()
    m.on_packet(hb("b", 22, 1), 100.1, "eth0")
    m.on_packet(hb("b", 22, 2), 100.2, "eth0")
    assert m.missed == {}
    m.on_packet(hb("b", 22, 6), 100.3, "eth0")  # 3, 4, 5 never came on eth0
    m.on_packet(hb("b", 22, 6), 100.3, "eth1")  # a link's first packet misses nothing
    assert m.missed == {("b", "eth0"): 3}
    m.on_packet(hb("b", 33, 1), 100.4, "eth0")  # restarted: its sequence starts again
    m.on_packet(hb("b", 33, 3), 100.5, "eth0")
    assert m.missed == {("b", "eth0"): 4}


def test_round_trip_time_is_the_last_direct_ack_per_link() -> None:
    m = manual()
    m.next_heartbeat(100.0)
    m.next_heartbeat(100.2)
    m.on_packet(Packet(PacketType.ACK, "b", 22, 1, ack=AckBody("a", 11, 1)), 100.25, "eth0")
    assert m.rtt == {("b", "eth0"): pytest.approx(0.25)}
    m.on_packet(Packet(PacketType.ACK, "b", 22, 2, ack=AckBody("a", 11, 2)), 100.21, "eth1")
    assert m.rtt[("b", "eth1")] == pytest.approx(0.01)
    # An ACK of a heartbeat this node no longer remembers sending says nothing of the time.
    m.on_packet(Packet(PacketType.ACK, "c", 33, 1, ack=AckBody("a", 11, 99)), 100.3, "eth0")
    assert ("c", "eth0") not in m.rtt

"""Who is up, whether this node may serve, and whether a peer is lost: pure logic.

Every method takes `now`, this node's monotonic clock in seconds; nothing here does I/O
or reads a clock, so tests drive it with a fake clock. The rules are docs/safety.md's:

- Each HEARTBEAT acknowledges the highest sequence accepted from every peer, and every
  accepted HEARTBEAT is answered at once with an ACK. `acked_at[P]` is the send time of
  the highest own sequence P acknowledged; the serving lease ends `LEASE` after the k-th
  largest of {now} and all `acked_at`, k = n // 2 + 1.
- Heard-age reports travel in heartbeats; the leader uses them for `lost()`.

Two refinements keep the "lost" rule safe when links flap (a reporter could otherwise
hear A again, and acknowledge it, right after reporting it silent):

- **Refusal.** A node that receives a heartbeat from P after a silence of at least
  `deadtime` (counted across P's incarnations) never acknowledges that incarnation of P
  again, and says so (REFUSED flag). P, once it no longer serves, rejoins with a fresh
  incarnation, exactly like an agent restart.
- **Counting.** `lost(A)` counts a reporter only when its own last report says it has
  not heard A for `deadtime` (such a reporter refuses A's incarnation from then on); the
  leader's estimate `reported age + (now - receipt)` is shown in `why_lost` but not
  counted, because a late report cannot prove the reporter still does not hear A.

A never-heard peer counts as last heard `initdead - deadtime` after this incarnation
started: before `initdead` it is "unknown" and cannot be declared lost on our word.

Replays: a heartbeat arrives once per link, so a sequence is accepted once per link
(above the highest seen on that link); reports and acks advance only on a sequence above
every link's. Packets of an incarnation that a newer one replaced are rejected.

Consumers: `incarnation` changes when the node rejoins; treat it as an agent restart
(read the placements again before starting anything).
"""

from __future__ import annotations

import math
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from controller.api.liveness import PeerState
from nodeagent.heartbeat.packet import NEVER_MS, AckBody, Packet, PacketType, PeerReport
from nodeagent.heartbeat.timing import HeartbeatTiming

SENT_HISTORY = 4096
OLD_INCARNATIONS = 16


class Rejected(Exception):
    """A well-formed packet that membership refuses; `reason` labels the counter."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class PeerStatus:
    state: PeerState
    age: float | None
    links: dict[str, float]
    incarnation: int | None = None
    refused: bool = False


@dataclass
class _Peer:
    incarnation: int | None = None
    highest_seq: int = 0
    link_seq: dict[str, int] = field(default_factory=dict)
    link_heard: dict[str, float] = field(default_factory=dict)
    refused: bool = False
    refuses_me: bool = False
    acked_seq: int = 0
    acked_at: float | None = None
    reports: dict[str, tuple[float, float]] = field(default_factory=dict)
    old_incarnations: deque[int] = field(default_factory=lambda: deque(maxlen=OLD_INCARNATIONS))


def _random_incarnation() -> int:
    return secrets.randbits(64) or 1


class Membership:
    def __init__(
        self,
        self_name: str,
        members: Iterable[str],
        timing: HeartbeatTiming,
        incarnation: int,
        started_at: float,
        new_incarnation: Callable[[], int] = _random_incarnation,
        auto_rejoin: bool = True,
        two_node: bool = False,
    ) -> None:
        names = list(dict.fromkeys([*members, self_name]))
        self.self_name = self_name
        self.members = tuple(sorted(names))
        self.timing = timing
        self.two_node = two_node
        self.incarnation = incarnation
        self.started_at = started_at
        self.seq = 0
        self.rejoins = 0
        self._new_incarnation = new_incarnation
        self.auto_rejoin = auto_rejoin
        self._sent: dict[int, float] = {}
        self._peers = {p: _Peer() for p in self.members if p != self_name}
        # The grace of initdead: a never-heard peer is taken as heard at this instant.
        never = started_at + timing.initdead - timing.deadtime
        self._last_heard: dict[str, float] = dict.fromkeys(self._peers, never)
        self._ever_heard: set[str] = set()
        # For the agent's metrics, per (peer, link); kept across a peer's incarnations so
        # that a count never goes down while this process runs.
        self.missed: dict[tuple[str, str], int] = {}
        """Heartbeats a peer sent that never arrived on a link (gaps in its sequence)."""
        self.rtt: dict[tuple[str, str], float] = {}
        """Seconds from a heartbeat sent to the peer's ACK of it, by the last ACK."""

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def k(self) -> int:
        """Acknowledgements (itself included) a serving lease needs: a majority; in
        two-node mode only its own, since the peer's loss must not stop the survivor
        (fencing, not the lease, keeps the two apart there)."""
        return 1 if self.two_node else self.n // 2 + 1

    @property
    def need(self) -> int:
        """Members other than a peer that must not have heard it for deadtime to declare it
        lost; in two-node mode there is only this node to ask."""
        return 1 if self.two_node else self.n - self.k + 1

    @property
    def peers(self) -> tuple[str, ...]:
        return tuple(self._peers)

    # -- sending -------------------------------------------------------------------

    def next_heartbeat(self, now: float) -> Packet:
        self._maybe_rejoin(now)
        self.seq += 1
        self._sent[self.seq] = now
        self._prune_sent(now)
        reports = []
        for name, st in self._peers.items():
            age_ms = min(max(0, math.floor((now - self._last_heard[name]) * 1000)), NEVER_MS)
            reports.append(
                PeerReport(
                    name=name,
                    incarnation=st.incarnation or 0,
                    seq=0 if st.refused else st.highest_seq,
                    heard_age_ms=age_ms,
                    refused=st.refused,
                )
            )
        return Packet(
            PacketType.HEARTBEAT, self.self_name, self.incarnation, self.seq, tuple(reports)
        )

    def _prune_sent(self, now: float) -> None:
        # Acks of heartbeats older than one deadtime cannot give a lease any more.
        horizon = now - 2 * self.timing.deadtime
        while self._sent:
            oldest = next(iter(self._sent))
            if self._sent[oldest] >= horizon and len(self._sent) <= SENT_HISTORY:
                break
            del self._sent[oldest]

    def rejoin(self, now: float) -> None:
        """Start a fresh incarnation: forget every acknowledgement, as an agent restart."""
        self.incarnation = self._new_incarnation()
        self.seq = 0
        self._sent.clear()
        self.rejoins += 1
        for st in self._peers.values():
            st.acked_seq, st.acked_at, st.refuses_me = 0, None, False

    def _maybe_rejoin(self, now: float) -> None:
        if (
            self.auto_rejoin
            and any(st.refuses_me for st in self._peers.values())
            and not self.serving(now)
        ):
            self.rejoin(now)

    # -- receiving -----------------------------------------------------------------

    def on_packet(self, pkt: Packet, now: float, link: str) -> list[Packet]:
        """Apply a decoded packet received on `link`; returns the packets to send back."""
        if pkt.sender == self.self_name:
            raise Rejected("self", f"packet from this node's own name {pkt.sender!r} (a loop?)")
        st = self._peers.get(pkt.sender)
        if st is None:
            raise Rejected(
                "unknown-sender", f"sender {pkt.sender!r} is not a member of the cluster spec"
            )
        if pkt.incarnation in st.old_incarnations:
            raise Rejected(
                "old-incarnation", f"{pkt.sender}: incarnation {pkt.incarnation:#x} was replaced"
            )
        if pkt.type is PacketType.ACK:
            return self._on_ack(pkt, st, now, link)
        return self._on_heartbeat(pkt, st, now, link)

    def _on_heartbeat(self, pkt: Packet, st: _Peer, now: float, link: str) -> list[Packet]:
        if st.incarnation != pkt.incarnation:
            old = st.old_incarnations
            if st.incarnation is not None:
                old.append(st.incarnation)
            st = self._peers[pkt.sender] = _Peer(incarnation=pkt.incarnation, old_incarnations=old)
        last_on_link = st.link_seq.get(link, 0)
        if pkt.seq <= last_on_link:
            raise Rejected(
                "replay", f"{pkt.sender}: seq {pkt.seq} <= {last_on_link} already seen on {link}"
            )
        if now >= self._last_heard[pkt.sender] + self.timing.deadtime:
            st.refused = True
        if last_on_link:
            gap = pkt.seq - last_on_link - 1
            if gap:
                key = (pkt.sender, link)
                self.missed[key] = self.missed.get(key, 0) + gap
        st.link_seq[link] = pkt.seq
        st.link_heard[link] = now
        self._last_heard[pkt.sender] = now
        self._ever_heard.add(pkt.sender)
        if pkt.seq > st.highest_seq:
            st.highest_seq = pkt.seq
            for rep in pkt.peers:
                self._on_report(pkt.sender, st, rep, now)
        self._maybe_rejoin(now)
        if st.refused:
            return []
        ack = AckBody(pkt.sender, pkt.incarnation, pkt.seq)
        return [Packet(PacketType.ACK, self.self_name, self.incarnation, self.seq, ack=ack)]

    def _on_report(self, sender: str, st: _Peer, rep: PeerReport, now: float) -> None:
        if rep.name == self.self_name:
            if rep.incarnation == self.incarnation:
                st.refuses_me = rep.refused
                if not rep.refused:
                    self._take_ack(st, rep.seq)
        elif rep.name in self._peers and rep.name != sender:
            age = math.inf if rep.heard_age_ms == NEVER_MS else rep.heard_age_ms / 1000
            st.reports[rep.name] = (age, now)

    def _on_ack(self, pkt: Packet, st: _Peer, now: float, link: str) -> list[Packet]:
        assert pkt.ack is not None
        if pkt.ack.node != self.self_name:
            raise Rejected("ack-misdirected", f"ACK from {pkt.sender} is for {pkt.ack.node!r}")
        if pkt.ack.incarnation != self.incarnation:
            raise Rejected(
                "ack-stale", f"ACK from {pkt.sender} is for a previous incarnation of this node"
            )
        sent = self._sent.get(pkt.ack.seq)
        if sent is not None:
            self.rtt[(pkt.sender, link)] = max(0.0, now - sent)
        self._take_ack(st, pkt.ack.seq)
        return []

    def _take_ack(self, st: _Peer, seq: int) -> None:
        sent = self._sent.get(seq)
        if seq > st.acked_seq and sent is not None:
            st.acked_seq, st.acked_at = seq, sent

    # -- views ---------------------------------------------------------------------

    def lease_expiry(self, now: float) -> float:
        times = [now, *(st.acked_at for st in self._peers.values() if st.acked_at is not None)]
        if len(times) < self.k:
            return -math.inf
        times.sort(reverse=True)
        return times[self.k - 1] + self.timing.lease

    def serving(self, now: float) -> bool:
        return now < self.lease_expiry(now) - self.timing.stop_margin

    def _age(self, peer: str, now: float) -> float:
        return now - self._last_heard[peer]

    def heard_ages(self, now: float) -> dict[str, float | None]:
        """Seconds since each peer was last heard; None if never since this start."""
        return {p: (self._age(p, now) if p in self._ever_heard else None) for p in self._peers}

    def peer_status(self, now: float) -> dict[str, PeerStatus]:
        t = self.timing
        out = {}
        for p, st in self._peers.items():
            links = {link: now - at for link, at in sorted(st.link_heard.items())}
            state: PeerState
            if p not in self._ever_heard:
                age = None
                state = "unknown" if now < self.started_at + t.initdead else "dead"
            else:
                # Compared as instants, like next_change(), so a timer set for the
                # change sees it despite float rounding.
                last = self._last_heard[p]
                age = now - last
                state = (
                    "dead"
                    if now >= last + t.deadtime
                    else "warn"
                    if now >= last + t.warntime
                    else "up"
                )
            out[p] = PeerStatus(state, age, links, st.incarnation, st.refused)
        return out

    def link_silent(self, now: float) -> dict[str, dict[str, bool]]:
        """Per peer, per link it was ever heard on: silent for deadtime. A peer is heard
        as long as any link hears it (`_last_heard` spans them all), so one silent link
        alone changes nothing here; the agent reports it as a degraded link."""
        deadtime = self.timing.deadtime
        return {
            p: {link: now >= at + deadtime for link, at in sorted(st.link_heard.items())}
            for p, st in self._peers.items()
        }

    def _silent_voters(self, peer: str, now: float) -> list[str]:
        voters = []
        if now >= self._last_heard[peer] + self.timing.deadtime:
            voters.append(self.self_name)
        for r, st in self._peers.items():
            rep = st.reports.get(peer)
            if r != peer and rep is not None and rep[0] >= self.timing.deadtime:
                voters.append(r)
        return voters

    def lost(self, peer: str, now: float) -> bool:
        """Whether enough members have not heard `peer` for deadtime to move its groups."""
        if peer not in self._peers:
            return False
        return len(self._silent_voters(peer, now)) >= self.need

    def why_lost(self, peer: str, now: float) -> str:
        if peer not in self._peers:
            return f"{peer} is not a peer of {self.self_name}"
        need = self.need
        voters = self._silent_voters(peer, now)
        parts = []
        own = self._age(peer, now)
        heard = "never heard since start" if peer not in self._ever_heard else f"{own:.3f} s"
        parts.append(f"{self.self_name} (self): {heard}")
        for r, st in self._peers.items():
            if r == peer:
                continue
            rep = st.reports.get(peer)
            if rep is None:
                parts.append(f"{r}: no report yet")
            else:
                age, at = rep
                parts.append(
                    f"{r}: reported {age:.3f} s, {now - at:.3f} s ago "
                    f"(estimate {age + now - at:.3f} s)"
                )
        verdict = "lost" if len(voters) >= need else "not lost"
        return (
            f"{peer} is {verdict}: {len(voters)} of {self.n - 1} other members "
            f"({', '.join(voters) or 'none'}) have not heard it for deadtime "
            f"{self.timing.deadtime:g} s, {need} needed; " + "; ".join(parts)
        )

    def next_change(self, now: float) -> float:
        """Earliest time after `now` when serving, a peer's state, a link's silence or
        lost() can change without a packet arriving (inf if none): the service sets a
        timer for it."""
        t = self.timing
        times = [self.lease_expiry(now) - t.stop_margin, self.started_at + t.initdead]
        for p, st in self._peers.items():
            last = self._last_heard[p]
            times += [last + t.warntime, last + t.deadtime]
            times += [at + t.deadtime for at in st.link_heard.values()]  # a link goes silent
        future = [x for x in times if x > now]
        return min(future, default=math.inf)


__all__ = ["Membership", "PeerStatus", "Rejected"]

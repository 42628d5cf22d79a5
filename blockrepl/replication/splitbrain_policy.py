"""What to do about a split brain found at connect time (pure).

Inputs are the two handshake identities; the answer is the same on both ends (mirrored),
because both run it on the same facts: the after-sb policies (identical on both sides, or
:func:`blockrepl.replication.handshake.incompatibility` refuses the peer), the role bits of
the bitmap UUIDs (who was Primary when the histories parted), the dirty-bit counts (blocks
changed since), the roles now, the ``resolve_conflicts`` tie-breaker (opposite on the two
ends) and the operator's ``--discard-mine`` marks.

Deliberate difference from DRBD: a Primary that must become sync target always demotes
first (``call-pri-lost-after-sb``; also for ``violently-as0p`` and for a manual resolution),
because a Primary here serves reads from its local disk and could not serve the data it is
receiving. If it cannot demote (NBD clients have it open) it disconnects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from blockrepl.uuids import (
    AfterSb,
    Resolution,
    SbFacts,
    recover_0pri,
    recover_1pri,
    recover_2pri,
)
from controller.api.splitbrain import DISCARD_NODE, check_policy

if TYPE_CHECKING:
    from blockrepl.replication.handshake import Identity


def policy_problem(after_sb: tuple[str, str, str], me: str, peer: str) -> str | None:
    """Configuration errors that only the pair can see (discard-node-NAME names)."""
    for npri, value in enumerate(after_sb):
        why = check_policy(npri, value)
        if why is not None:
            return why
    p0 = after_sb[0]
    if p0.startswith(DISCARD_NODE):
        name = p0[len(DISCARD_NODE) :]
        if not me or not peer or me == peer:
            return (
                f"after-sb-0pri {p0} needs distinct node names, got {me!r} and {peer!r}: "
                "give each replica its own --node-name"
            )
        if name not in (me, peer):
            return f"after-sb-0pri {p0} names neither replica ({me!r}, {peer!r}): fix NAME"
    return None


def _policy(value: str, me: str) -> AfterSb:
    if value.startswith(DISCARD_NODE):
        return AfterSb.DISCARD_LOCAL if value[len(DISCARD_NODE) :] == me else AfterSb.DISCARD_REMOTE
    return AfterSb(value)


@dataclass(frozen=True)
class SbVerdict:
    action: int | None  # 1: I am sync source, -1: I am sync target, None: stay disconnected
    full: bool
    reason: str
    demote_self: bool = False


def _facts(me: Identity, peer: Identity, resolve_conflicts: bool) -> SbFacts:
    return SbFacts(
        self_was_primary=bool(me.generation[1] & 1),
        peer_was_primary=bool(peer.generation[1] & 1),
        self_changes=me.dirty_bits,
        peer_changes=peer.dirty_bits,
        resolve_conflicts=resolve_conflicts,
        self_primary=me.primary,
        peer_primary=peer.primary,
    )


def _auto(me: Identity, peer: Identity, f: SbFacts) -> tuple[Resolution, str]:
    npri = int(me.primary) + int(peer.primary)
    p0 = _policy(me.after_sb[0], me.node_name)
    if npri == 0:
        return recover_0pri(p0, f), f"after-sb-0pri {me.after_sb[0]}"
    if npri == 1:
        out = recover_1pri(_policy(me.after_sb[1], me.node_name), p0, f)
    else:
        out = recover_2pri(_policy(me.after_sb[2], me.node_name), p0, f)
    return out.resolution, f"after-sb-{npri}pri {me.after_sb[npri]}"


def describe(me: Identity, peer: Identity) -> str:
    def side(who: str, ident: Identity) -> str:
        was = "Primary" if ident.generation[1] & 1 else "Secondary"
        now = "Primary" if ident.primary else "Secondary"
        return f"{who} changed {ident.dirty_bits} blocks (was {was} at the split, {now} now)"

    return f"{side('this node', me)}, {side('the peer', peer)}"


def resolve_split_brain(
    me: Identity, peer: Identity, resolve_conflicts: bool, *, auto: bool, rule: int
) -> SbVerdict:
    """``auto``: the UUIDs share a parent (rule 90), so the after-sb policies may decide;
    otherwise (ambiguous history) only the operator can, and the resync must be full."""
    f = _facts(me, peer, resolve_conflicts)
    res, how = Resolution.UNRESOLVED, "after-sb policies not applicable (ambiguous history)"
    if auto:
        res, how = _auto(me, peer, f)
        if res is Resolution.CONFIG_ERROR:
            res = Resolution.UNRESOLVED
            how += " is not valid here (configuration error)"
    if res is Resolution.UNRESOLVED and me.discard_mine != peer.discard_mine:
        res = Resolution.TARGET if me.discard_mine else Resolution.SOURCE
        who = "this node" if me.discard_mine else "the peer"
        how = f"resolve --discard-mine on {who}"
    facts = describe(me, peer)
    if res is Resolution.UNRESOLVED:
        both = " (both replicas asked to discard their data: only one may)" * (
            me.discard_mine and peer.discard_mine
        )
        return SbVerdict(
            None,
            False,
            f"split brain detected: both replicas wrote since they parted; {facts}; "
            f"{how} left it unresolved{both}. Choose the replica whose changes to DISCARD: "
            "there run `blockrepl demote --control SOCK` if it is Primary, then "
            "`blockrepl resolve --discard-mine --control SOCK`; on the other replica run "
            "`blockrepl resolve --connect --control SOCK`",
        )
    source = res is Resolution.SOURCE
    loser = "the peer's" if source else "this node's"
    return SbVerdict(
        1 if source else -1,
        full=not auto,  # no common bitmap base: the bitmaps cannot say what differs
        reason=f"split brain resolved by {how}: {loser} changes are discarded, this node is "
        f"sync {'source' if source else 'target'} ({facts}; UUID rule {rule})",
        demote_self=not source and me.primary,
    )

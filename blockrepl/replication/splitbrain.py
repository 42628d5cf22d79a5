"""Acting on split-brain decisions: the losing Primary's demotion and the operator's resolve.

The decision itself is pure (:mod:`blockrepl.replication.splitbrain_policy`); this module
changes the node. After an unresolved split brain a replica is StandAlone (state
``SplitBrain``): it neither dials nor accepts, like DRBD, until the operator runs
``blockrepl resolve`` on it: ``--discard-mine`` on the replica whose changes are to be
thrown away (DRBD ``connect --discard-my-data``), ``--connect`` on the survivor.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from blockrepl.errors import RoleError

if TYPE_CHECKING:
    from blockrepl.replication.link import ReplicationLink
    from blockrepl.replication.node import ReplicaNode

log = logging.getLogger(__name__)

STANDALONE = (
    "the replica refusing this connection is StandAlone after a split brain: run "
    "`blockrepl resolve --connect --control SOCK` on it (or `--discard-mine` if its changes "
    "are the ones to discard)"
)


async def lose_primary(node: ReplicaNode, link: ReplicationLink, reason: str) -> None:
    """call-pri-lost-after-sb: demote if no NBD client has the device open, else refuse."""
    from blockrepl.replication.node import Refused

    clients = node.in_use()
    if clients:
        node.state = "SplitBrain"
        why = (
            f"{reason}; but the losing Primary cannot demote: {clients} NBD client(s) have it "
            "open. On the losing Primary stop them, run `blockrepl demote --control SOCK`, "
            "then `blockrepl resolve --discard-mine --control SOCK`"
        )
        await link.refuse(why)
        raise Refused(why)
    await node.demote()
    log.warning("gave up the Primary role: %s", reason)


def resolve(node: ReplicaNode, *, discard_mine: bool) -> None:
    """Leave StandAlone and connect again; with ``discard_mine`` as the sync target."""
    if node.cfg.peer is None and node.cfg.listen is None:
        raise RoleError("resolve needs a replica with a peer (--peer/--listen-repl)")
    if node.conn is not None:
        raise RoleError(
            f"resolve applies to a disconnected replica; this one is {node.state} "
            "(a split brain is only found, and resolved, while connecting)"
        )
    if discard_mine:
        if node.is_primary:
            raise RoleError(
                "this replica is Primary: demote it first (`blockrepl demote`); "
                "--discard-mine throws away its changes"
            )
        node.discard_mine = True
    if node.state in ("SplitBrain", "StandAlone", "Refused"):
        node.state = "Connecting"
    log.warning("resolve: connecting again%s", " as sync target" * discard_mine)

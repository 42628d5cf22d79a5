"""Command-line parts of split-brain handling: ``serve --after-sb-*`` and ``blockrepl resolve``."""

from __future__ import annotations

import argparse
import json
import socket
from typing import Any

from blockrepl.errors import BlockReplError
from controller.api.splitbrain import DISCONNECT, check_policy


class PolicyError(BlockReplError):
    pass


def add_serve_options(group: argparse._ArgumentGroup) -> None:
    for npri, text in (
        (
            0,
            "no Primary now: discard-younger-primary, discard-older-primary, "
            "discard-zero-changes, discard-least-changes, discard-node-NAME",
        ),
        (1, "one Primary: consensus, violently-as0p, discard-secondary, call-pri-lost-after-sb"),
        (2, "two Primaries: violently-as0p, call-pri-lost-after-sb"),
    ):
        group.add_argument(
            f"--after-sb-{npri}pri",
            default=DISCONNECT,
            metavar="POLICY",
            help=f"split-brain auto-recovery with {text} (default disconnect: none); "
            "both replicas must use the same",
        )
    group.add_argument(
        "--node-name",
        default=socket.gethostname(),
        help="this replica's name for --after-sb-0pri discard-node-NAME (default: hostname)",
    )


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ReplConfig fields; a clear error for an unknown policy."""
    policies = (args.after_sb_0pri, args.after_sb_1pri, args.after_sb_2pri)
    for npri, value in enumerate(policies):
        why = check_policy(npri, value)
        if why is not None:
            raise PolicyError(why)
    return {"after_sb": policies, "node_name": args.node_name}


def cmd_resolve(args: argparse.Namespace) -> int:
    from blockrepl.replication.control import request

    answer = request(args.control, "resolve", discard_mine=bool(args.discard_mine))
    if not answer.get("ok"):
        raise PolicyError(f"resolve refused: {answer.get('error')}")
    print(json.dumps(answer["status"], indent=2))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "resolve",
        help="leave StandAlone after a split brain: --discard-mine on the replica whose "
        "changes are thrown away, --connect on the other",
    )
    p.add_argument("--control", required=True, metavar="SOCK")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--discard-mine",
        action="store_true",
        help="become sync target at the next connection (DRBD connect --discard-my-data)",
    )
    how.add_argument("--connect", action="store_true", help="just connect again (the survivor)")
    p.set_defaults(func=cmd_resolve)

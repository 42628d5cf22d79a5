"""``blockrepl verify``: start an online verify over the control socket, optionally wait.

Exit codes like ``cmp``: 0 in sync, 1 differences found, 2 error (refused, aborted,
stopped, or the replica unreachable). Without ``--wait`` it only starts the run (0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from blockrepl.errors import BlockReplError

POLL = 0.5


def _fail(msg: str) -> int:
    print(f"blockrepl: verify: {msg}", file=sys.stderr)
    return 2


def _line(p: dict[str, Any]) -> str:
    eta = p.get("eta_seconds")
    return (
        f"verify {p['percent']:5.1f}%  {p['done_bytes']}/{p['total_bytes']} bytes  "
        f"{p['rate_bytes_per_s'] / 2**20:.1f} MiB/s  eta {eta if eta is not None else '?'} s  "
        f"out-of-sync blocks {p['out_of_sync_blocks']}"
    )


def report(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"verify {result['result']}: {result['out_of_sync_blocks']} blocks "
            f"({result['out_of_sync_bytes']} bytes) out of sync in {result['verified_bytes']} "
            f"bytes verified, {result['seconds']} s"
        )
        for off, length in result["ranges"]:
            print(f"  {off}+{length}")
        if result["ranges_truncated"]:
            print("  ... (more ranges not listed)")
        if result["resync"]:
            print(f"resync: {result['resync']}")
    if result["result"] == "in-sync":
        return 0
    if result["result"] == "out-of-sync":
        return 1
    return 2


def cmd_verify(args: argparse.Namespace) -> int:
    from blockrepl.replication.control import request  # the daemon's modules: only when used

    try:
        extra: dict[str, Any] = {"resync": bool(args.resync), "start": int(args.start)}
        answer = request(args.control, "verify", **extra)
        if not answer.get("ok"):
            return _fail(f"refused: {answer.get('error')}")
        run = answer["status"]["verify"]
        # run is None if it finished before the status was taken (tiny volume)
        run_id = run["id"] if run is not None else (answer["status"]["last_verify"] or {})["id"]
        if not args.wait:
            print(f"verify {run_id} started")
            return 0
        last_print = 0.0
        while True:
            st = request(args.control, "status")
            if not st.get("ok"):
                return _fail(str(st.get("error")))
            status = st["status"]
            cur = status.get("verify")
            if cur is not None and cur["id"] == run_id:
                if not args.quiet and time.monotonic() - last_print >= 2:
                    last_print = time.monotonic()
                    print(_line(cur), flush=True)
                time.sleep(POLL)
                continue
            result = status.get("last_verify")
            if result is None or result.get("id") != run_id:
                return _fail(f"verify {run_id} vanished (replica restarted?)")
            return report(result, args.json)
    except (BlockReplError, OSError, ValueError) as exc:
        return _fail(str(exc))


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "verify",
        help="compare all blocks with the connected peer (exit 0 same, 1 differ, 2 error)",
    )
    p.add_argument("--control", required=True, metavar="SOCK")
    p.add_argument("--resync", action="store_true", help="resync the differing blocks")
    p.add_argument("--start", default=0, type=int, help="byte offset to start at")
    p.add_argument("--wait", action="store_true", help="wait for the result")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_verify)

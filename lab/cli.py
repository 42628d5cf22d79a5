"""`ha lab ...` subcommands: up, down, kill, reboot, partition, block, heal, status.

The `ha` entry point calls `register(subparsers)`; each subcommand stores its
handler in `func` (called with the parsed namespace, returns an exit code).
`python -m lab.cli ...` runs the same commands standalone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from lab.core import Lab
from lab.errors import LabError
from lab.state import DEFAULT_DISK_ROOT, lab_dir, list_labs

DEFAULT_LAB = "demo"
Handler = Callable[[argparse.Namespace], int]


def _up(args: argparse.Namespace) -> int:
    if not args.payload:
        # The default lab is a Vigil cluster: an agent and an etcd member per node.
        from lab.cluster import DEFAULT_TIMING, TUNED_TIMING, VigilLab

        timing = TUNED_TIMING if args.timing == "tuned" else DEFAULT_TIMING
        cluster = VigilLab(
            args.name, args.nodes, timing=timing, disk_root=args.disk_root, bmcs=args.bmcs
        )
        cluster.up()
        _print_status(cluster.lab, as_json=False)
        print(f"\nVigil cluster {args.name} is up; run ha against it with:")
        print(f"  ha lab ha --name {args.name} status")
        print(f"  ha lab ha --name {args.name} apply -f FILE   (FILE read on this host)")
        if args.bmcs:
            _print_bmcs(args.name, cluster.fence_manifest())
        return 0
    payload = [shlex.split(p) for p in args.payload]
    lab = Lab(args.name, args.nodes, payload, disk_root=args.disk_root)
    lab.up()
    _print_status(lab, as_json=False)
    if args.bmcs:
        from lab.bmc import LabBmcs

        bmcs = LabBmcs(lab)
        try:
            bmcs.start()
        except BaseException:
            lab.down()
            raise
        _print_bmcs(args.name, bmcs.fence_manifest())
    return 0


def _print_bmcs(name: str, manifest: str) -> None:
    path = lab_dir(name) / "fencing.yaml"
    path.write_text(manifest)
    print(f"\nEvery node has a BMC (ipmi_sim; IPMI powers it off and on); its FenceDevices: {path}")


def _ha(args: argparse.Namespace) -> int:
    """`ha ARGS` from the lab's client namespace, with the lab's admin client config."""
    lab = Lab.attach(args.name)
    config = lab_dir(args.name) / "vigil" / "client.yaml"
    if not config.exists():
        raise LabError(f"lab {args.name} runs no Vigil cluster (it was made with --payload)")
    ha = str(Path(sys.executable).parent / "ha")
    argv = lab.wrap_argv("client", [ha, "--config", str(config), *args.args])
    return subprocess.run(argv, check=False).returncode


def _down(args: argparse.Namespace) -> int:
    # Not Lab.attach: down must also work when the state file is missing or broken.
    try:
        lab = Lab.attach(args.name)
    except LabError:
        lab = Lab(args.name, 1)
    lab.down(keep_disks=args.keep_disks)
    print(f"lab {args.name} is down" + (" (disks kept)" if args.keep_disks else ""))
    return 0


def _kill(args: argparse.Namespace) -> int:
    Lab.attach(args.name).kill(args.node)
    print(f"{args.node}: killed (PID 1 SIGKILLed, link down)")
    return 0


def _reboot(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    lab.reboot(args.node)
    print(f"{args.node}: up again, pid {lab.node_pid(args.node)}")
    return 0


def _partition(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    lab.partition(" ".join(args.groups))
    print("cut: " + ", ".join(f"{a}-{b}" for a, b in lab.cuts))
    return 0


def _block(args: argparse.Namespace) -> int:
    lab = Lab.attach(args.name)
    lab.block(args.source, args.destination, args.only)
    print("one-way: " + ", ".join(f"{s}->{d} ({w})" for s, d, w in lab.blocks))
    return 0


def _heal(args: argparse.Namespace) -> int:
    Lab.attach(args.name).heal()
    print("all partitions and blocks healed")
    return 0


def _status(args: argparse.Namespace) -> int:
    if args.all:
        for name in list_labs():
            print(name)
        return 0
    _print_status(Lab.attach(args.name), as_json=args.json)
    return 0


def _print_status(lab: Lab, *, as_json: bool) -> None:
    rows = lab.status()
    if as_json:
        doc = {
            "lab": lab.name,
            "client": {"netns": lab.client_ns, "ip": lab.client_ip},
            "nodes": [asdict(r) for r in rows],
            "cuts": lab.cuts,
            "blocks": lab.blocks,
        }
        print(json.dumps(doc, indent=2))
        return
    print(f"lab {lab.name}: subnet {lab.layout.subnet}, client {lab.client_ip} ({lab.client_ns})")
    print(f"{'NODE':<9}{'STATE':<6}{'PID':>8}  {'IP':<16}{'MAC':<19}{'LINK':<5}NETNS")
    for r in rows:
        print(
            f"{r.name:<9}{'up' if r.up else 'down':<6}{r.pid or '-':>8}  {r.ip:<16}{r.mac:<19}"
            f"{'up' if r.link_up else 'down':<5}{r.netns}"
        )
    if lab.cuts:
        print("partitioned pairs: " + ", ".join(f"{a}/{b}" for a, b in lab.cuts))
    if lab.blocks:
        print("one-way blocks: " + ", ".join(f"{s}->{d} ({w})" for s, d, w in lab.blocks))


def _add(sub: argparse._SubParsersAction, name: str, handler: Handler, help_: str,  # type: ignore[type-arg]
         ) -> argparse.ArgumentParser:  # fmt: skip
    p: argparse.ArgumentParser = sub.add_parser(name, help=help_, description=help_)
    p.add_argument(
        "--name", default=DEFAULT_LAB, help=f"lab name, [a-z0-9]{{1,20}} (default {DEFAULT_LAB})"
    )
    p.set_defaults(func=_guarded(handler))
    return p


def _guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except LabError as exc:
            print(f"ha lab: error: {exc}", file=sys.stderr)
            return 2

    return run


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the `lab` command group to the `ha` CLI."""
    lab_p = subparsers.add_parser(
        "lab", help="build and break a local multi-node lab cluster (namespaces)",
        description="A real cluster on one machine: namespaces per node, a bridge, a client.",
    )  # fmt: skip
    sub = lab_p.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")

    p = _add(sub, "up", _up, "create a lab: a Vigil cluster, or nodes running --payload")
    p.add_argument("--nodes", type=int, default=3, help="number of nodes n1..nN (default 3)")
    p.add_argument(
        "--payload", action="append", default=[], metavar="CMD",
        help="command each node runs (repeatable); placeholders {node} {ip} {disk} {lab}",
    )  # fmt: skip
    p.add_argument("--disk-root", default=str(DEFAULT_DISK_ROOT), help="where node disks live")
    p.add_argument(
        "--timing", choices=("default", "tuned"), default="default",
        help="heartbeat timings of the Vigil cluster: default (200ms/900ms) or tuned (50ms/250ms)",
    )  # fmt: skip
    p.add_argument(
        "--bmcs", action="store_true",
        help="a BMC per node (ipmi_sim) that really powers it off and on; writes its FenceDevices",
    )  # fmt: skip

    p = _add(sub, "ha", _ha, "run ha against the lab's Vigil cluster, from its client namespace")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="ha arguments")

    p = _add(sub, "down", _down, "kill everything, delete namespaces and state")
    p.add_argument("--keep-disks", action="store_true", help="keep the nodes' disk directories")

    p = _add(sub, "kill", _kill, "power loss: SIGKILL the node's PID 1 and take its link down")
    p.add_argument("node")
    p = _add(sub, "reboot", _reboot, "boot the node again (fresh namespaces, same disk)")
    p.add_argument("node")
    p = _add(sub, "partition", _partition, "cut traffic between groups, e.g. `n1 / n2,n3`")
    p.add_argument("groups", nargs="+", help="node groups separated by '/'")
    p = _add(sub, "block", _block, "drop IP traffic in one direction only, e.g. `n1 n2`")
    p.add_argument("source")
    p.add_argument("destination")
    p.add_argument("--only", choices=("all", "heartbeat"), default="all",
                   help="heartbeat: only Vigil's heartbeats (UDP 694)")  # fmt: skip
    _add(sub, "heal", _heal, "remove every partition and block")
    p = _add(sub, "status", _status, "nodes, PIDs, up/down, addresses")
    p.add_argument("--json", action="store_true")
    p.add_argument("--all", action="store_true", help="list the labs that exist")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ha")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())

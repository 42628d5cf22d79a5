"""Vigil's main job on one machine: a 3-node cluster keeps a service up through a power loss.

Builds a lab (a namespace per node, a client, a bridge, and a BMC per node: an IPMI
simulator that really powers its node off and on), boots `vigil-agent` with its own etcd
member on every node, with fencing on through those BMCs, then runs a scenario:

- `postgres` (the default, lab/demo_pg.py): PostgreSQL on a replicated volume (protocol
  C, ext4) behind a floating IP; a client commits numbered rows through it without pause,
  the active node loses power, and the demo prints the outage and the commits lost (0).
- `vip`: an HTTP service behind a floating IP; the active node loses power and the demo
  measures, from the client, how long the floating IP did not answer.

Either way the lost node is fenced (power off through IPMI, read back off) before the
service starts elsewhere. Everything it creates is removed on exit.

    .venv/bin/python -m lab.demo [--scenario postgres|vip] [--timing default|tuned] [--keep]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

from lab.cluster import DEFAULT_TIMING, TUNED_TIMING, VigilLab
from lab.testing import unique_lab_name

PROBE = Path(__file__).with_name("probe_client.py")


def say(text: str) -> None:
    print(f"\n\033[1m{text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def show(lab: VigilLab, *args: str) -> None:
    print(f"$ ha {' '.join(args)}", flush=True)
    result = lab.ha(*args)
    sys.stdout.write(result.out or result.err)
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", choices=("default", "tuned"), default="default")
    parser.add_argument("--keep", action="store_true", help="leave the lab running at the end")
    parser.add_argument(
        "--scenario",
        choices=("postgres", "vip"),
        default="postgres",
        help="postgres: PostgreSQL on a replicated volume (default); vip: a web service",
    )
    args = parser.parse_args(argv)
    timing = DEFAULT_TIMING if args.timing == "default" else TUNED_TIMING
    disks = tempfile.mkdtemp(prefix="vigil-demo-")
    # Fencing "off": a lab node boots in a second (a server, in minutes), and the demo shows
    # the service recovered elsewhere rather than back on the rebooted node.
    lab = VigilLab(
        unique_lab_name("demo"), 3, timing=timing, disk_root=disks, fencing=True,
        fence_action="off",
    )  # fmt: skip
    say(f"Booting a 3-node cluster with IPMI fencing in lab {lab.name} (timing {timing})")
    started = time.monotonic()
    lab.up()
    try:
        print(f"every agent connected and a leader elected in {time.monotonic() - started:.1f} s")
        show(lab, "status")
        if args.scenario == "postgres":
            from lab.demo_pg import postgres_scenario

            return postgres_scenario(lab)
        return vip_scenario(lab)
    finally:
        if args.keep:
            print(
                f"\nlab kept: `ha lab down --name {lab.name}` removes it; client config "
                f"{lab.client_config}"
            )
        else:
            lab.down()


def vip_scenario(lab: VigilLab) -> int:
    say(f"Applying a web service behind the floating IP {lab.vip()}")
    spec = lab.web_group()
    print(spec)
    result = lab.apply(spec)
    sys.stdout.write(result.out or result.err)
    active = lab.wait_running("web")
    show(lab, "status")
    print(f"client -> http://{lab.vip()}/ answers: {lab.get(lab.vip())}")

    say(f"Power loss of {active}, the node running the service")
    probe = lab.lab.popen_in(
        "client",
        [sys.executable, "-S", str(PROBE), lab.vip(), "--interval", "0.01", "--timeout", "0.3"],
        stdout=-1,
        text=True,
    )
    time.sleep(1.0)
    killed_at = time.monotonic()
    lab.lab.kill(active)
    # The client's own answers say when the service is back; asking `ha status` in a
    # loop meanwhile would only load the CPU during the failover being measured.
    assert probe.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = probe.stdout.readline()
        if not line:
            break
        lines.append(line)
        seen = json.loads(line)
        if seen["node"] not in (None, active) and seen["t1"] > killed_at:
            break
    probe.send_signal(signal.SIGTERM)
    out, _ = probe.communicate(timeout=30)
    answers = [json.loads(x) for x in [*lines, *out.splitlines()] if x.startswith("{")]
    first = min(
        (a["t1"] for a in answers if a["node"] not in (None, active) and a["t1"] > killed_at),
        default=None,
    )
    survivor = lab.wait_running("web", not_on=active, within=30)
    show(lab, "status")
    print(f"client -> http://{lab.vip()}/ answers: {lab.get(lab.vip())}")
    if first is None:
        print(f"the floating IP never answered from {survivor} in the probe window")
        return 1
    say(
        f"The service answered from {survivor} {first - killed_at:.3f} s after {active} "
        f"lost power ({len(answers)} connection attempts, one every 10 ms)"
    )
    show(lab, "events", "rg", "web")
    say(f"How {active} was fenced before the service moved")
    show(lab, "events", "node", active)
    return 0


if __name__ == "__main__":
    sys.exit(main())

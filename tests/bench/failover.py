"""Benchmark: how long a floating IP is unreachable after the active node loses power.

A real 3-node Vigil cluster in the lab serves a small HTTP service behind a VIP. A client
in the client namespace opens a new TCP connection to the VIP every 10 ms (attempts
overlap, 300 ms timeout each). The active node loses power (its PID 1 SIGKILLed, its link
down) after a random delay, so kills are not phase-locked to heartbeats; the gap is from
the kill to the first answer from another node. Then the node is rebooted and rejoins,
and the next kill takes whichever node is active.

With --load, every core is kept busy by other processes during the kills (the agents run
at real-time priority; etcd does not). With --etcd-leader-share F, that share of the kills
first moves the group to the node that leads etcd, so the power loss also costs the store
its leader: the failover must not depend on which node leads etcd.

With --soak, both cores are saturated by other processes for that long while the cluster
runs, and every placement change is counted: a spurious failover is a failure.

--clusters picks the shapes: 3-node (majority, the serving lease alone), 3-node-ipmi (the
same with fencing through the lab's IPMI BMCs: the lost node is powered off and read back
off before its group moves) and 2-node-ipmi (two-node mode: the survivor fences its peer
through IPMI, restarts the store alone, then recovers the group). Fencing is "off" in the
lab: a lab node would be back in a second, a server in minutes. 3-node-pg is the seed
scenario (_failover_pg.py): PostgreSQL on a replicated volume with IPMI fencing, the gap
measured from the power loss to the first new commit through the VIP, and the commits
acknowledged and lost counted.

    .venv/bin/python -m tests.bench.failover [--kills 20] [--timing default tuned]
        [--clusters 3-node 2-node-ipmi] [--load] [--etcd-leader-share 0.5] [--soak 600]
        [--json tests/bench/results/failover.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lab import state
from lab.cluster import DEFAULT_TIMING, TUNED_TIMING, VigilLab
from lab.testing import unique_lab_name
from tests.bench._failover_pg import run_pg
from tests.bench.procstat import percentile

RESULTS = Path(__file__).parent / "results"
PROBE = Path(__file__).resolve().parents[2] / "lab" / "probe_client.py"
TIMINGS = {"default": DEFAULT_TIMING, "tuned": TUNED_TIMING}
CLUSTERS = ("3-node", "3-node-ipmi", "2-node-ipmi", "3-node-pg")


def make_lab(cluster: str, timing: dict[str, str], disks: str) -> VigilLab:
    name = unique_lab_name("fb")
    if cluster == "3-node":
        return VigilLab(name, 3, timing=timing, disk_root=disks)
    if cluster == "3-node-ipmi":
        return VigilLab(name, 3, timing=timing, disk_root=disks, fencing=True, fence_action="off")
    return VigilLab(
        name, 2, timing=timing, disk_root=disks, fencing=True, fence_action="off",
        quorum="two-node",
    )  # fmt: skip


# Lines of the survivors' logs that explain a slow failover.
EXPLAINS = (
    "lost ",
    "placement ",
    "leader",
    "leads",
    "blocked",
    "etcd",
    "-> dead",
    "not moved",
    "stopping",
    "fenc",
)


def log_excerpt(lab: VigilLab, node: str, start: float, end: float) -> list[str]:
    """The node's log lines stamped between two wall-clock times that explain a failover."""
    lo, hi = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) for t in (start, end + 1))
    try:
        text = state.log_path(lab.lab.name, node).read_text(errors="replace")
    except OSError:
        return []
    return [
        f"{node}: {line}"
        for line in text.splitlines()
        if lo <= line[:19] <= hi and any(word in line for word in EXPLAINS)
    ]


def etcd_leader(lab: VigilLab) -> str | None:
    result = lab.ha("cluster", "members", "-o", "json", timeout=30)
    try:
        rows = json.loads(result.out)
    except ValueError:
        return None
    return next((str(r["name"]) for r in rows if r.get("leader")), None)


def move_to(lab: VigilLab, node: str) -> None:
    """Put the group on ``node`` (ha move, then the move cleared: stickiness keeps it)."""
    if lab.wait_running("web", within=60) == node:
        return
    moved = lab.ha("move", "web", node)
    deadline = time.monotonic() + 60
    while lab.where("web") != node:
        if time.monotonic() > deadline:
            # Say why: the move's own answer, and what the cluster says about the group.
            describe = lab.ha("describe", "rg", "web").out
            status = lab.ha("status").out
            raise RuntimeError(
                f"web did not move to {node} (ha move: exit {moved.code} {moved.err.strip()})"
                f"\n{status}\n{describe}"
            )
        time.sleep(0.2)
    cleared = lab.ha("move", "web", "--clear")
    if cleared.code != 0:
        raise RuntimeError(f"ha move web --clear: exit {cleared.code}: {cleared.err.strip()}")


def one_kill(
    lab: VigilLab, rng: random.Random, slow: float, etcd_leader_share: float
) -> dict[str, Any]:
    store_leader = etcd_leader(lab)
    if store_leader is not None and rng.random() < etcd_leader_share:
        move_to(lab, store_leader)
    victim = lab.wait_running("web", within=60)
    leader = lab.status()["leader"]
    probe = lab.lab.popen_in(
        "client",
        [sys.executable, "-S", str(PROBE), lab.vip(), "--interval", "0.01", "--timeout", "0.3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5 + rng.uniform(0.0, 1.0))
    killed_at = time.monotonic()
    killed_wall = time.time()
    lab.lab.kill(victim)
    # Watch the client's own record of answers: polling `ha status` here would load the
    # CPU during the very failover being measured.
    assert probe.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = probe.stdout.readline()
        if not line:
            break
        lines.append(line)
        answer = json.loads(line)
        if answer["node"] not in (None, victim) and answer["t1"] > killed_at:
            break
    probe.send_signal(signal.SIGTERM)
    out, _ = probe.communicate(timeout=30)
    answers = [json.loads(line) for line in [*lines, *out.splitlines()] if line.startswith("{")]
    survivor = lab.where("web")
    first = min(
        (a["t1"] for a in answers if a["node"] and a["node"] != victim and a["t1"] > killed_at),
        default=None,
    )
    last_old = max((a["t1"] for a in answers if a["node"] == victim), default=None)
    gap = None if first is None else first - killed_at
    explain: list[str] = []
    if gap is None or gap > slow or os.environ.get("VIGIL_BENCH_EXPLAIN"):
        for node in sorted(set(lab.nodes) - {victim}):
            explain += log_excerpt(lab, node, killed_wall - 1, killed_wall + (gap or 20))
    lab.lab.reboot(victim)
    lab.wait_ready(within=60)
    return {
        "victim": victim,
        "controller_leader": leader,
        "etcd_leader": store_leader,
        "survivor": survivor,
        "gap_s": gap,
        "explain": explain,
        "last_answer_from_victim_s": None if last_old is None else last_old - killed_at,
        "attempts": len(answers),
    }


def hog_cpus() -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]


def soak(lab: VigilLab, seconds: float) -> dict[str, Any]:
    """Both cores saturated; count placement changes of the group."""
    before = lab.status()
    group = next(g for g in before["groups"] if g["name"] == "web")
    hogs = hog_cpus()
    lost_seen: set[str] = set()
    samples = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(5)
            try:
                now = lab.status()
            except Exception:  # the CLI itself may time out under load; that is not a failover
                continue
            samples += 1
            lost_seen |= {n["name"] for n in now["nodes"] if n["state"] != "Ready"}
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    after = lab.status()
    end = next(g for g in after["groups"] if g["name"] == "web")
    return {
        "seconds": seconds,
        "epoch_before": group["epoch"],
        "epoch_after": end["epoch"],
        "placement_changes": (end["epoch"] or 0) - (group["epoch"] or 0),
        "node_before": group["running"],
        "node_after": end["running"],
        "nodes_not_ready_seen": sorted(lost_seen),
        "status_samples": samples,
    }


def run_config(
    cluster: str,
    name: str,
    kills: int,
    soak_s: float,
    seed: int,
    *,
    load: bool,
    etcd_leader_share: float,
) -> dict[str, Any]:
    rng = random.Random(seed)
    timing = TIMINGS[name]
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as disks:
        lab = make_lab(cluster, timing, disks)
        lab.up()
        try:
            applied = lab.apply(lab.web_group())
            if applied.code != 0:
                raise RuntimeError(applied.err)
            lab.wait_running("web", within=60)
            runs = []
            hogs = hog_cpus() if load else []
            try:
                for i in range(kills):
                    result = one_kill(
                        lab,
                        rng,
                        slow=3 * float(timing["deadtime"].removesuffix("ms")) / 1000,
                        etcd_leader_share=etcd_leader_share,
                    )
                    runs.append(result)
                    gap = result["gap_s"]
                    shown = "none" if gap is None else f"{gap:.3f} s"
                    killed = [
                        role
                        for role, holder in (
                            ("controller leader", result["controller_leader"]),
                            ("etcd leader", result["etcd_leader"]),
                        )
                        if holder == result["victim"]
                    ]
                    print(
                        f"  [{name}] kill {i + 1}/{kills}: {result['victim']} -> "
                        f"{result['survivor']}: gap {shown}"
                        + (f" ({' and '.join(killed)} killed)" if killed else ""),
                        flush=True,
                    )
                    for line in result["explain"]:
                        print(f"      {line}", flush=True)
            finally:
                for hog in hogs:
                    hog.kill()
                    hog.wait()
            soaked = soak(lab, soak_s) if soak_s > 0 else None
        finally:
            lab.down()
    gaps = [r["gap_s"] for r in runs if r["gap_s"] is not None]
    store_leader_gaps = [
        r["gap_s"] for r in runs if r["gap_s"] is not None and r["etcd_leader"] == r["victim"]
    ]
    return {
        "cluster": cluster,
        "timing": timing,
        "load": load,
        "etcd_leader_kills": sum(1 for r in runs if r["etcd_leader"] == r["victim"]),
        "gap_max_etcd_leader_killed_s": max(store_leader_gaps) if store_leader_gaps else None,
        "kills": kills,
        "answered": len(gaps),
        "gap_min_s": min(gaps) if gaps else None,
        "gap_median_s": statistics.median(gaps) if gaps else None,
        "gap_p95_s": percentile(gaps, 0.95) if gaps else None,
        "gap_max_s": max(gaps) if gaps else None,
        "runs": runs,
        "soak": soaked,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument(
        "--timing", nargs="+", choices=sorted(TIMINGS), default=["default", "tuned"]
    )
    parser.add_argument(
        "--clusters", nargs="+", choices=CLUSTERS, default=["3-node", "2-node-ipmi", "3-node-pg"]
    )
    parser.add_argument(
        "--soak", type=float, default=600.0, help="seconds per 3-node timing; 0 skips"
    )
    parser.add_argument("--load", action="store_true", help="keep every core busy during kills")
    parser.add_argument(
        "--etcd-leader-share",
        type=float,
        default=0.0,
        help="share of kills whose victim also leads etcd (0 to 1)",
    )
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--json", type=Path, default=RESULTS / "failover.json")
    args = parser.parse_args(argv)
    results = {}
    for cluster in args.clusters:
        for name in args.timing:
            print(f"== {cluster}, {name} timings: {TIMINGS[name]}", flush=True)
            if cluster == "3-node-pg":
                results[f"{cluster}/{name}"] = run_pg(
                    TIMINGS[name], args.kills, args.seed, hog_cpus if args.load else list,
                )  # fmt: skip
                continue
            results[f"{cluster}/{name}"] = run_config(
                cluster,
                name,
                args.kills,
                args.soak if cluster == "3-node" else 0.0,
                args.seed,
                load=args.load,
                etcd_leader_share=args.etcd_leader_share,
            )
    print()
    print(
        f"{'cluster/timing':<24} {'kills':>5} {'min':>7} {'median':>7} {'p95':>7} {'max':>7} "
        f"{'max/med':>7} {'etcd-leader kills (max)':>24}  soak"
    )
    for name, r in results.items():

        def fmt(v: float | None) -> str:
            return "   n/a" if v is None else f"{v:6.3f}s"

        soaked = r["soak"]
        soak_text = (
            "skipped"
            if soaked is None
            else f"{soaked['seconds']:.0f} s saturated: {soaked['placement_changes']} placement "
            f"changes, nodes not ready: {soaked['nodes_not_ready_seen'] or 'none'}"
        )
        ratio = (
            f"{r['gap_max_s'] / r['gap_median_s']:6.2f}x"
            if r["gap_max_s"] and r["gap_median_s"]
            else "   n/a"
        )
        leader_kills = f"{r['etcd_leader_kills']} ({fmt(r['gap_max_etcd_leader_killed_s'])})"
        if "commits_lost" in r:
            soak_text = (
                f"commits acknowledged {r['commits_acknowledged']}, lost {r['commits_lost']}"
            )
        print(
            f"{name:<24} {r['answered']:>2}/{r['kills']:<2} {fmt(r['gap_min_s'])} "
            f"{fmt(r['gap_median_s'])} {fmt(r['gap_p95_s'])} {fmt(r['gap_max_s'])} "
            f"{ratio:>7} {leader_kills:>24}  {soak_text}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

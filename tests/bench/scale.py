"""Benchmark: a big `ha apply` on a running three-node cluster, and what it costs.

For each size, a fresh lab cluster (shipped timings) first runs three probed groups (an
HTTP service behind a VIP each) with a client asking each one every 20 ms. Then N groups
of one floating IP each (addresses in 10.201.0.0/16, on eth0, reachable from the client)
are applied in one `ha apply`, and the bench reports:

- the time from `ha apply` returning until all N report Running (a watch on the store
  from the client namespace, tests/bench/_scale_watch.py);
- serving leases lost and heartbeat rejoins (the agents' logs), and event-loop stalls,
  the control plane's and the liveness process's counted apart;
- each agent's CPU (share of one core) and RSS while converging and then idle;
- whether any already-running probed group was interrupted (the client's record:
  an unanswered attempt, or an answer from another node).

`--mixed N` adds a run of N groups of a floating IP plus an exec service each.
`--profile DIR` samples the first node's agent with py-spy (pip install py-spy) from the
apply on, for `--profile-seconds`, and writes collapsed stacks there (`summarize_profile`
prints where the time went); with `--profile-idle`, it samples the idle window instead.

    .venv/bin/python -m tests.bench.scale [--groups 100 300 1000 3000] [--mixed 300]
        [--idle 20] [--profile DIR [--profile-idle]] [--json tests/bench/results/scale.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lab import state
from lab.cluster import VigilLab
from lab.errors import LabError
from lab.testing import unique_lab_name
from tests.bench.procstat import cpu_seconds, rss_mb
from tests.chaos.observers import ClientView

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[2]
VIP_NET = "10.201.0.0/16"
PROBED = ("probe-a", "probe-b", "probe-c")

# What the agents' logs say when the liveness path suffered (nodeagent/heartbeat/service.py
# and nodeagent/loopwatch.py).
LEASE_LOST = re.compile(r"heartbeat: serving \S+: true -> false")
REJOIN = re.compile(r"heartbeat: incarnation \S+: [0-9a-f]+ -> ")
STALL_CONTROL = "control-plane event loop blocked"
STALL_LIVENESS = "liveness loop blocked"
STALL_OLD = "event loop blocked for"  # before the liveness path had a loop of its own


def vip(i: int) -> str:
    return f"10.201.{i // 250}.{i % 250 + 1}"


def groups_manifest(count: int, *, service: bool) -> str:
    docs = []
    for i in range(count):
        extra = (
            "\n    - service: {exec: {command: [/bin/sleep, infinity], stopTimeout: 2s}}"
            if service
            else ""
        )
        docs.append(
            f"apiVersion: ha.vigil.dev/v1alpha1\nkind: ResourceGroup\n"
            f"metadata: {{name: g-{i:04d}}}\nspec:\n  resources:\n"
            f"    - ip: {{address: {vip(i)}/32, interface: eth0, arp: {{count: 1}}}}{extra}\n"
        )
    return "---\n".join(docs)


def agent_and_liveness(lab: VigilLab, node: str) -> list[int]:
    return [pid for pid in lab.agent_processes(node) if pid is not None]


class Usage:
    """Each agent's CPU share and peak RSS over a window (with its liveness process)."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.start = time.monotonic()
        self.cpu0 = {n: cpu_seconds(p) for n, p in pids.items()}
        self.peak = {n: rss_mb(p) for n, p in pids.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            for node, pid in self.pids.items():
                with contextlib.suppress(OSError):
                    self.peak[node] = max(self.peak[node], rss_mb(pid))

    def end(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        self._thread.join()
        seconds = time.monotonic() - self.start
        out = {}
        for node, pid in self.pids.items():
            try:
                used = cpu_seconds(pid) - self.cpu0[node]
                out[node] = {"cpu": used / seconds, "rss_mb": max(self.peak[node], rss_mb(pid))}
            except OSError:  # the agent restarted: its numbers are gone
                out[node] = {"cpu": float("nan"), "rss_mb": float("nan")}
        return out


def log_counts(lab: VigilLab, since_wall: float) -> dict[str, dict[str, int]]:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since_wall))
    out = {}
    for node in lab.nodes:
        try:
            lines = state.log_path(lab.lab.name, node).read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        recent = [line for line in lines if line[:19] >= stamp]
        out[node] = {
            "leases_lost": sum(1 for line in recent if LEASE_LOST.search(line)),
            "rejoins": sum(1 for line in recent if REJOIN.search(line)),
            "stalls_control": sum(
                1 for line in recent if STALL_CONTROL in line or STALL_OLD in line
            ),
            "stalls_liveness": sum(1 for line in recent if STALL_LIVENESS in line),
        }
    return out


class Watcher:
    """The scale_watch process and the counts it printed."""

    def __init__(self, lab: VigilLab) -> None:
        argv = [sys.executable, "-m", "tests.bench._scale_watch",
                "--config", str(lab.client_config), "--prefix", "g-"]  # fmt: skip
        self.proc = lab.lab.popen_in("client", argv, stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError, KeyError):
                record = json.loads(line)
                with self._lock:
                    self.samples.append((float(record["t"]), dict(record["phases"])))

    def running(self) -> int:
        with self._lock:
            return self.samples[-1][1].get("Running", 0) if self.samples else 0

    def wait_running(self, count: int, within: float) -> float | None:
        """Monotonic time at which `count` groups were first Running, or None."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with self._lock:
                done = next((t for t, p in self.samples if p.get("Running", 0) >= count), None)
            if done is not None:
                return done
            time.sleep(0.1)
        return None

    def stop(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self._thread.join(timeout=5)


def interruptions(view: ClientView, since: float, owners: dict[str, str]) -> dict[str, int]:
    """Per probed group, attempts after `since` left unanswered or answered elsewhere."""
    out = {}
    for group in PROBED:
        with view._lock:  # the record the observer keeps
            answers = [a for a in view.answers[group] if a.time >= since]
        out[group] = sum(1 for a in answers if a.node != owners[group])
    return out


def slow_answers(view: ClientView, since: float) -> int:
    """Of those, attempts that timed out after the address answered: a node held the VIP
    and its kernel completed the connection, but the service (or the client) waited for a
    CPU. The rest (no connection, refused, answered by another node) are cuts."""
    with view._lock:
        return sum(
            1
            for group in PROBED
            for a in view.answers[group]
            if a.time >= since and a.node is None and a.error == "timeout" and a.connected
        )


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).parent / "py-spy"
    argv = [str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)),
            "--rate", "200", "--nonblocking", "--nolineno", "--gil",
            "--format", "raw", "--output", str(out)]  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, top: int = 25) -> list[tuple[str, float, float]]:
    """(function, share of samples in it or below, share where it is the innermost frame).
    Samples are of the thread holding the GIL: where the agent's Python time went."""
    total = 0
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
        own[frames[-1]] = own.get(frames[-1], 0) + count
    rows = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    return [(f, n / total, own.get(f, 0) / total) for f, n in rows] if total else []


def run_size(
    count: int, *, service: bool, idle: float, within: float,
    profile: Path | None = None, profile_seconds: float = 20.0, keep_logs: Path | None = None,
    profile_idle: bool = False,
) -> dict[str, Any]:  # fmt: skip
    label = f"{count}{' mixed' if service else ''}"
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as disks:
        lab = VigilLab(unique_lab_name("sc"), 3, disk_root=disks)
        lab.up()
        view: ClientView | None = None
        watcher: Watcher | None = None
        try:
            lab.lab.exec_in("client", ["ip", "route", "add", VIP_NET, "dev", "eth0"], check=True)
            probed = "---\n".join(
                lab.web_group(name, host=100 + i, port=8081 + i) for i, name in enumerate(PROBED)
            )
            applied = lab.apply(probed)
            if applied.code != 0:
                raise RuntimeError(applied.err)
            owners = {g: lab.wait_running(g, within=60) for g in PROBED}
            pids = {n: p for n in lab.nodes if (p := agent_and_liveness(lab, n))}
            view = ClientView(
                lab.lab, {g: (lab.vip(100 + i), 8081 + i) for i, g in enumerate(PROBED)}
            ).start()
            watcher = Watcher(lab)
            time.sleep(2.0)  # the probes answer and the watcher lists before the apply
            started_wall = time.time()
            began = time.monotonic()
            usage = Usage(pids)
            spy = None
            spy_out = None
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
                phase = "idle" if profile_idle else "apply"
                spy_out = profile / f"{label.replace(' ', '-')}-{phase}-{lab.nodes[0]}.txt"
            if spy_out is not None and not profile_idle:
                spy = start_profile(pids[lab.nodes[0]][0], profile_seconds, spy_out)
            result = lab.ha("apply", "-f", "-", stdin=groups_manifest(count, service=service),
                            timeout=600)  # fmt: skip
            applied_at = time.monotonic()
            if result.code != 0:
                raise RuntimeError(f"ha apply: exit {result.code}: {result.err[-2000:]}")
            done_at = watcher.wait_running(count, within)
            converging = usage.end()
            reached = watcher.running()
            idle_usage = None
            if idle > 0:
                time.sleep(2.0)  # the last status writes settle
                if spy_out is not None and profile_idle:
                    # py-spy's own sampling is outside the agent: the window's numbers hold.
                    spy = start_profile(pids[lab.nodes[0]][0], idle, spy_out)
                window = Usage(pids)
                time.sleep(idle)
                idle_usage = window.end()
            if spy is not None:
                spy.wait(timeout=profile_seconds + 60)
            broken = interruptions(view, began, owners)
            slow = slow_answers(view, began)
            logs = log_counts(lab, started_wall)
            row = {
                "label": label,
                "groups": count,
                "service": service,
                "apply_s": applied_at - began,
                "converge_s": None if done_at is None else max(0.0, done_at - applied_at),
                "running_at_end": reached,
                "leases_lost": sum(n["leases_lost"] for n in logs.values()),
                "rejoins": sum(n["rejoins"] for n in logs.values()),
                "stalls_control": sum(n["stalls_control"] for n in logs.values()),
                "stalls_liveness": sum(n["stalls_liveness"] for n in logs.values()),
                "probe_interruptions": broken,
                "probe_timeouts": slow,
                "probe_attempts": sum(
                    1 for g in PROBED for a in view.answers[g] if a.time >= began
                ),
                "usage_converging": converging,
                "usage_idle": idle_usage,
                "per_node_logs": logs,
            }
        finally:
            if keep_logs is not None:
                keep_logs.mkdir(parents=True, exist_ok=True)
                for node in lab.nodes:
                    with contextlib.suppress(OSError):
                        text = state.log_path(lab.lab.name, node).read_bytes()
                        (keep_logs / f"{label.replace(' ', '-')}-{node}.log").write_bytes(text)
            if watcher is not None:
                watcher.stop()
            if view is not None:
                view.stop()
            try:
                lab.down()
            except LabError as exc:  # thousands of addresses make a slow namespace teardown
                print(f"   lab teardown: {exc}", flush=True)
    return row


def fmt_usage(usage: dict[str, dict[str, float]] | None) -> str:
    if not usage:
        return "n/a"
    cpu = max(u["cpu"] for u in usage.values())
    rss = max(u["rss_mb"] for u in usage.values())
    return f"{100 * cpu:5.1f}% {rss:5.0f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="*", default=[100, 300, 1000, 3000])
    parser.add_argument("--mixed", type=int, nargs="*", default=[300],
                        help="sizes of runs whose groups also run an exec service")  # fmt: skip
    parser.add_argument("--idle", type=float, default=20.0, help="idle window measured, s")
    parser.add_argument("--within", type=float, default=240.0, help="give up after, s")
    parser.add_argument("--profile", type=Path, help="write py-spy samples of node 1 here")
    parser.add_argument("--profile-seconds", type=float, default=20.0)
    parser.add_argument("--profile-idle", action="store_true",
                        help="profile the idle window (--idle s) instead of the apply")  # fmt: skip
    parser.add_argument("--keep-logs", type=Path, help="copy the agents' logs here")
    parser.add_argument("--json", type=Path, default=RESULTS / "scale.json")
    args = parser.parse_args(argv)
    plan = [(n, False) for n in args.groups] + [(n, True) for n in args.mixed]
    rows = []
    for count, service in plan:
        print(f"== {count} groups{' with exec services' if service else ''}", flush=True)
        row = run_size(count, service=service, idle=args.idle, within=args.within,
                       profile=args.profile, profile_seconds=args.profile_seconds,
                       keep_logs=args.keep_logs, profile_idle=args.profile_idle)  # fmt: skip
        rows.append(row)
        print(f"   {json.dumps({k: v for k, v in row.items() if k != 'per_node_logs'})}",
              flush=True)  # fmt: skip
    # Seconds per 100 groups against the smallest run of this same invocation: whether
    # convergence grows with the change or faster.
    base = next((r for r in rows if r["converge_s"] is not None), None)
    print()
    print(f"{'groups':<11} {'apply':>7} {'to Running':>10} {'s/100 vs first':>14} "
          f"{'leases lost':>11} {'stalls ctl/live':>15} {'probes cut (slow)':>17} "
          f"{'converging cpu/rss (max)':>24} {'idle cpu/rss (max)':>20}")  # fmt: skip
    for r in rows:
        conv = r["converge_s"]
        ratio = "n/a"
        if conv is not None and base is not None and base["converge_s"]:
            per = conv / r["groups"]
            ratio = f"{per / (base['converge_s'] / base['groups']):.2f}x"
        shown = f"{conv:9.2f}s" if conv is not None else f"> limit ({r['running_at_end']})"
        print(
            f"{r['label']:<11} {r['apply_s']:6.2f}s {shown:>10} {ratio:>14} "
            f"{r['leases_lost']:>11} {r['stalls_control']:>7}/{r['stalls_liveness']:<7} "
            f"{sum(r['probe_interruptions'].values()):>10} ({r['probe_timeouts']:>4}) "
            f"{fmt_usage(r['usage_converging']):>24} {fmt_usage(r['usage_idle']):>20}"
        )
    if args.profile is not None:
        for path in sorted(args.profile.glob("*.txt")):
            print(f"\nprofile {path.name}: share of samples (in or below / innermost)")
            for frame, inclusive, own in summarize_profile(path):
                print(f"  {100 * inclusive:5.1f}% {100 * own:5.1f}%  {frame[:110]}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: blockrepl write and read throughput against a local file and nbdkit `file`.

Load generator: fio (C; ``ioengine=nbd`` via libnbd for the NBD targets, ``psync`` for the
local file), so the client is never the Python bottleneck. Workloads: 1 MiB sequential
writes (8 in flight), 4 KiB random writes (32 in flight), and the same two shapes as reads
(``seq-read-1M``, ``rand-read-4K``, of the data the write runs left), each time-based, the
writes ending with a flush (``end_fsync``). Targets: local file, ``nbdkit file`` (the C
baseline), blockrepl without a peer, and blockrepl Primary with protocols A, B, C
replicating to a Secondary in another network namespace (veth). Ratios are against
nbdkit-file from the same run. Each cell is the median of ``--repeat`` fio runs;
``cpu ms/MiB`` is the CPU time (user + system) of the serving processes (Primary +
Secondary for A/B/C) per MiB moved, which is steadier than MiB/s on a machine shared with
other work; ``primary cpu ms/MiB`` is the Primary's (or the lone server's) share.
``blockrepl-resync``: the Secondary misses a write of the whole area and comes back; the
resync's rate (unlimited) and the source's CPU per MiB resynced.

    .venv/bin/python -m tests.bench.blockrepl [--dir /dev/shm] [--seconds 3] [--repeat 1]
        [--targets local-file nbdkit-file blockrepl-nopeer blockrepl-C ...]
        [--workloads seq-1M rand-4K seq-read-1M rand-read-4K] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.bench.procstat import cpu_seconds
from tests.integration.blockrepl.replicas import Replica, replica_pair, synced, wait_for

RESULTS = Path(__file__).parent / "results"
SIZE = "160M"
AREA = "128M"  # region the workloads write to (inside the data area of every target)
WORKLOADS = {
    "seq-1M": ["--rw=write", "--bs=1M", "--iodepth=8"],
    "rand-4K": ["--rw=randwrite", "--bs=4k", "--iodepth=32", "--randrepeat=1"],
    "seq-read-1M": ["--rw=read", "--bs=1M", "--iodepth=8"],
    "rand-read-4K": ["--rw=randread", "--bs=4k", "--iodepth=32", "--randrepeat=1"],
}
TARGETS: tuple[str, ...] = ("local-file", "nbdkit-file", "blockrepl-nopeer")
TARGETS += ("blockrepl-A", "blockrepl-B", "blockrepl-C", "blockrepl-resync")


def fio(target: list[str], workload: str, seconds: float) -> dict[str, float]:
    cmd = [
        "fio",
        "--name=bench",
        "--output-format=json",
        f"--size={AREA}",
        f"--runtime={seconds}",
        "--time_based",
        *(["--end_fsync=1"] if "read" not in workload else []),
        *WORKLOADS[workload],
        *target,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"fio failed: {out.stderr or out.stdout}")
    job = json.loads(out.stdout[out.stdout.index("{") :])["jobs"][0]
    job = job["read" if "read" in workload else "write"]
    return {"MiB_s": round(job["bw_bytes"] / 2**20, 1), "iops": round(job["iops"])}


def nbd_target(sock: str, export: str = "") -> list[str]:
    return ["--ioengine=nbd", f"--uri=nbd+unix:///{export}?socket={sock}"]


def blockrepl_cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "blockrepl.cli", *args], check=True, capture_output=True)


def wait_socket(path: str, proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server for {path} did not start")
        time.sleep(0.05)


@contextmanager
def server(cmd: list[str], sock: str) -> Iterator[int]:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_socket(sock, proc)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fresh_file(path: Path) -> str:
    with open(path, "wb") as f:
        f.truncate(int(SIZE[:-1]) * 2**20)
    return str(path)


def run(
    base: Path,
    seconds: float,
    repeat: int = 1,
    targets: tuple[str, ...] = TARGETS,
    workloads: tuple[str, ...] = tuple(WORKLOADS),
) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}

    def measure(name: str, target: list[str], pids: tuple[int, ...] = ()) -> None:
        per: dict[str, dict[str, float]] = {}
        for w in workloads:
            runs = []
            for _ in range(repeat):
                cpu0 = [cpu_seconds([pid]) for pid in pids]
                r = fio(target, w, seconds)
                if pids:
                    mib = max(r["MiB_s"] * seconds, 1e-9)
                    used = [cpu_seconds([pid]) - c0 for pid, c0 in zip(pids, cpu0, strict=True)]
                    r["cpu_ms_per_MiB"] = round(1000 * sum(used) / mib, 2)
                    r["primary_cpu_ms_per_MiB"] = round(1000 * used[0] / mib, 2)
                runs.append(r)
            per[w] = {k: round(statistics.median(x[k] for x in runs), 2) for k in runs[0]}
        results[name] = per
        print(f"  measured {name}: {results[name]}", flush=True)

    if "local-file" in targets:
        img = fresh_file(base / "local.img")
        measure("local-file", ["--ioengine=psync", f"--filename={img}"])

    if "nbdkit-file" in targets:
        img = fresh_file(base / "nbdkit.img")
        sock = str(base / "nbdkit.sock")
        with server(["nbdkit", "-f", "-U", sock, "file", f"file={img}"], sock) as pid:
            measure("nbdkit-file", nbd_target(sock), (pid,))

    if "blockrepl-nopeer" in targets:
        img = fresh_file(base / "solo.img")
        blockrepl_cli("create-md", "--backing", img)
        sock = str(base / "solo.sock")
        cmd = [sys.executable, "-m", "blockrepl.cli", "serve", "--backing", img, "--unix", sock]
        with server([*cmd, "--force"], sock) as pid:
            measure("blockrepl-nopeer", nbd_target(sock, "blockrepl"), (pid,))

    protocols = [t[-1] for t in targets if t in ("blockrepl-A", "blockrepl-B", "blockrepl-C")]
    if not protocols and "blockrepl-resync" not in targets:
        return results
    pair_dir = base / "pair"
    pair_dir.mkdir()
    with replica_pair(pair_dir, SIZE, al_extents=257) as (_net, a, b, secret):
        for proto in protocols:
            a.stop()
            b.stop()
            b.start("secondary", secret, "--protocol", proto)
            a.start("primary", secret, "--protocol", proto)
            wait_for(lambda: synced(a) and synced(b), 60, f"reconnect with protocol {proto}")
            assert a.proc is not None and b.proc is not None
            pids = (a.proc.pid, b.proc.pid)  # `ip netns exec` execs the server: same pid
            measure(f"blockrepl-{proto}", nbd_target(a.sock, "blockrepl"), pids)
            st = a.status()
            assert st["connection"] == "Connected", st  # the peer stayed attached throughout
        if "blockrepl-resync" in targets:
            runs = [resync(a, b, secret) for _ in range(repeat)]
            cell = {k: round(statistics.median(x[k] for x in runs), 2) for k in runs[0]}
            results["blockrepl-resync"] = {f"resync-{AREA}": cell}
            print(f"  measured blockrepl-resync: {cell}", flush=True)
    return results


def resync(a: Replica, b: Replica, secret: str) -> dict[str, float]:
    """The Secondary misses a write of the whole area, then comes back: the resync's rate
    (unlimited) and the source's (Primary's) CPU per MiB resynced."""
    a.stop()
    b.stop()
    a.start("primary", secret, "--resync-rate", "0")
    wait_for(lambda: os.path.exists(a.sock), 20, "the Primary's NBD socket")
    fill = ["fio", "--name=fill", f"--size={AREA}", "--rw=write", "--bs=1M", "--iodepth=8"]
    subprocess.run([*fill, *nbd_target(a.sock, "blockrepl")], check=True, capture_output=True)
    assert a.proc is not None
    cpu0 = cpu_seconds([a.proc.pid])
    b.start("secondary", secret)
    wait_for(lambda: synced(a) and synced(b), 120, "the resync")
    used = cpu_seconds([a.proc.pid]) - cpu0
    last = a.status()["last_sync"]
    mib = last["payload_bytes"] / 2**20
    rate = round(mib / max(last["seconds"], 1e-3), 1)
    cpu = round(1000 * used / mib, 2)
    return {"MiB_s": rate, "iops": rate, "cpu_ms_per_MiB": cpu, "primary_cpu_ms_per_MiB": cpu}


def table(results: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """One row per target and workload (a row per target would be too wide to read)."""
    base = results.get("nbdkit-file")
    rows = []
    for name, per in results.items():
        for w, r in per.items():
            ratio = (
                round(r["MiB_s"] / base[w]["MiB_s"], 2)
                if base and w in base and base[w]["MiB_s"]
                else ""
            )
            rows.append(
                {
                    "target": name,
                    "workload": w,
                    "MiB/s": r["MiB_s"],
                    "IOPS": r["iops"],
                    "vs nbdkit": ratio,
                    "cpu ms/MiB": r.get("cpu_ms_per_MiB", ""),
                    "primary cpu ms/MiB": r.get("primary_cpu_ms_per_MiB", ""),
                }
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default="/dev/shm", help="where volume files live (tmpfs default)")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=1, help="fio runs per cell (median)")
    ap.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    ap.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    ap.add_argument("--json", default=str(RESULTS / "blockrepl.json"))
    args = ap.parse_args()
    if not shutil.which("fio") or not shutil.which("nbdkit"):
        print("needs fio (with the nbd engine) and nbdkit: apt-get install fio nbdkit")
        return 2
    started = time.monotonic()
    load_start = os.getloadavg()
    base = Path(tempfile.mkdtemp(prefix="blockrepl-bench-", dir=args.dir))
    try:
        results = run(base, args.seconds, args.repeat, tuple(args.targets), tuple(args.workloads))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    rows = table(results)
    cols = list(rows[0])
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print(" | ".join(f"{c:>{width[c]}}" for c in cols))
    for row in rows:
        print(" | ".join(f"{row[c]!s:>{width[c]}}" for c in cols))
    report = {
        "workloads": {w: " ".join(WORKLOADS[w]) for w in args.workloads},
        "seconds_per_run": args.seconds,
        "repeat": args.repeat,
        "volume_dir": args.dir,
        "cpus": os.cpu_count(),
        "loadavg_at_start": load_start,
        "loadavg_at_end": os.getloadavg(),
        "wall_seconds": round(time.monotonic() - started, 1),
        "rows": rows,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json} ({report['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

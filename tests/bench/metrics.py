"""Benchmark: what /metrics costs an idle agent, and how long a scrape takes.

Two fresh three-node lab clusters (shipped timings), each running one probed HTTP group
behind a VIP: one with metrics off (`metrics.enabled: false` in every node config), one
with them on (the default: loopback, port 9464). For each, once the group runs and the
cluster has settled, the bench reports every agent's CPU (share of one core, the agent
process alone, and with its liveness process) and RSS over an idle window; with metrics
on, over a second window in which each agent is scraped every `--scrape-every` seconds
(Prometheus's default is 15 s). Then `--scrapes` scrapes in a row of one agent, from
inside its node (one client process; each a new connection): the latency
(median, p95, max), the size of the exposition, and the agent CPU time per scrape.

Goal (issue 12): under 2 % of a core and 120 MB per idle agent with metrics on.

    .venv/bin/python -m tests.bench.metrics [--idle 30] [--scrape-every 5] [--scrapes 200]
        [--json tests/bench/results/metrics.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from lab.cluster import VigilLab
from lab.testing import unique_lab_name
from tests.bench.procstat import cpu_seconds, percentile
from tests.bench.scale import RESULTS, Usage, agent_and_liveness

SETTLE = 10.0  # seconds after the group runs: start-up work (first writes, caches) done

SCRAPER = """
import json, sys, time, urllib.request
url, n = sys.argv[1], int(sys.argv[2])
times, size = [], 0
for _ in range(n):
    began = time.perf_counter()
    body = urllib.request.urlopen(url, timeout=10).read()
    times.append(time.perf_counter() - began)
    size = len(body)
print(json.dumps({"times": times, "bytes": size}))
"""


def idle(lab: VigilLab, seconds: float, scrape_every: float | None) -> dict[str, dict[str, float]]:
    """Each agent's CPU share and peak RSS over `seconds`, scraped every `scrape_every`."""
    agents = {n: agent_and_liveness(lab, n) for n in lab.nodes}
    alone = {n: pids[:1] for n, pids in agents.items()}
    stop = threading.Event()

    def scraper() -> None:
        while scrape_every is not None and not stop.wait(scrape_every):
            for node in lab.nodes:
                lab.scrape(node)

    thread = threading.Thread(target=scraper, daemon=True)
    both, agent = Usage(agents), Usage(alone)
    thread.start()
    time.sleep(seconds)
    stop.set()
    thread.join()
    with_liveness, agent_only = both.end(), agent.end()
    return {
        n: {
            "cpu": agent_only[n]["cpu"],
            "cpu_with_liveness": with_liveness[n]["cpu"],
            "rss_mb": agent_only[n]["rss_mb"],
        }
        for n in lab.nodes
    }


def scrape_latency(lab: VigilLab, node: str, count: int) -> dict[str, float]:
    pid = agent_and_liveness(lab, node)[:1]
    cpu0 = cpu_seconds(pid)
    proc = lab.lab.exec_in(
        node,
        [sys.executable, "-c", SCRAPER, "http://127.0.0.1:9464/metrics", str(count)],
        timeout=count * 10 + 30,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scraping {node}: {proc.stderr[-500:]}")
    cpu = cpu_seconds(pid) - cpu0
    data = json.loads(proc.stdout)
    times = sorted(data["times"])
    return {
        "scrapes": count,
        "median_ms": statistics.median(times) * 1000,
        "p95_ms": percentile(times, 0.95) * 1000,
        "max_ms": times[-1] * 1000,
        "bytes": data["bytes"],
        "agent_cpu_ms_per_scrape": cpu / count * 1000,
    }


def run(enabled: bool, args: argparse.Namespace, disks: Path) -> dict[str, Any]:
    lab = VigilLab(unique_lab_name("bm"), 3, disk_root=disks, metrics={"enabled": enabled})
    lab.up()
    try:
        if lab.apply(lab.web_group()).code != 0:
            raise RuntimeError("ha apply of the web group failed")
        lab.wait_running("web", 60)
        time.sleep(SETTLE)
        row: dict[str, Any] = {"metrics": "on" if enabled else "off"}
        row["idle"] = idle(lab, args.idle, None)
        if enabled:
            row["idle_scraped"] = idle(lab, args.idle, args.scrape_every)
            row["scrape"] = scrape_latency(lab, lab.nodes[0], args.scrapes)
        return row
    finally:
        lab.down()


def worst(usage: dict[str, dict[str, float]], key: str) -> float:
    return max(v[key] for v in usage.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--idle", type=float, default=30.0, help="seconds per idle window")
    parser.add_argument("--scrape-every", type=float, default=5.0)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--json", type=Path, default=RESULTS / "metrics.json")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        for enabled in (False, True):
            rows.append(run(enabled, args, Path(tmp) / ("on" if enabled else "off")))
    print(f"\n{'window':<28} {'agent CPU (max)':>16} {'+liveness':>10} {'RSS MB (max)':>13}")
    for row in rows:
        windows = [("idle", f"metrics {row['metrics']}, idle")]
        if "idle_scraped" in row:
            windows.append(("idle_scraped", f"metrics on, scraped /{args.scrape_every:g}s"))
        for key, title in windows:
            usage = row[key]
            print(
                f"{title:<28} {worst(usage, 'cpu') * 100:>15.2f}% "
                f"{worst(usage, 'cpu_with_liveness') * 100:>9.2f}% "
                f"{worst(usage, 'rss_mb'):>13.1f}"
            )
    scrape = next(row["scrape"] for row in rows if "scrape" in row)
    print(
        f"\nscrape ({scrape['scrapes']} in a row, one agent): median {scrape['median_ms']:.1f} ms, "
        f"p95 {scrape['p95_ms']:.1f} ms, max {scrape['max_ms']:.1f} ms, "
        f"{scrape['bytes']} bytes, agent CPU {scrape['agent_cpu_ms_per_scrape']:.2f} ms/scrape"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

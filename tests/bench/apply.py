"""Benchmark: one `ha apply` of 1,000 resource groups, and `ha get` of all of them.

Runs against a real etcd (data dir in /dev/shm). Reports wall time, the etcd
transactions and range reads the apply cost, and a baseline measured in the same
run: committing the same 1,000 documents with one raw store transaction, so the
ratio shows what parsing, validation and planning add.

    .venv/bin/python -m tests.bench.apply [--groups 1000] [--repeat 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.api.manifest import load
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.store.base import Put
from controller.store.etcd import EtcdStore
from controller.store.objects import ObjectStore
from tests.etcd_server import EtcdServer

RESULTS = Path(__file__).parent / "results"
HA = str(Path(sys.executable).parent / "ha")


def manifest(cluster: str, groups: int) -> str:
    docs = [
        f"""apiVersion: ha.vigil.dev/v1alpha1
kind: Cluster
metadata: {{name: {cluster}}}
spec:
  nodes:
    - {{name: n1, address: 10.30.0.1}}
    - {{name: n2, address: 10.30.0.2}}
    - {{name: n3, address: 10.30.0.3}}
  fencing: {{enabled: false}}
"""
    ]
    for i in range(groups):
        docs.append(
            f"""apiVersion: ha.vigil.dev/v1alpha1
kind: ResourceGroup
metadata: {{name: g{i:04d}, labels: {{bench: "yes"}}}}
spec:
  placement: {{nodes: [{{name: n{i % 3 + 1}, score: 100}}]}}
  resources:
    - ip: {{address: 10.{40 + i // 65536}.{i // 256 % 256}.{i % 256}/8}}
    - service: {{exec: {{command: [/usr/bin/sleep, infinity]}}}}
      probe: {{tcp: {{port: {8000 + i % 1000}}}}}
"""
        )
    return "---\n".join(docs)


async def one_round(endpoint: str, path: Path, cluster: str) -> dict[str, float]:
    started = time.perf_counter()
    documents = load([str(path)])
    parse_s = time.perf_counter() - started
    applied = decode_documents(documents)
    decode_s = time.perf_counter() - started - parse_s
    async with EtcdStore([endpoint], cluster) as store:
        started = time.perf_counter()
        outcome = await apply_objects(store, applied, cluster=cluster)
        apply_s = time.perf_counter() - started
        txns, ranges = store.stats.txns, store.stats.ranges
        started = time.perf_counter()
        items, _ = await ObjectStore(store).list_objects(["ResourceGroup"])
        list_s = time.perf_counter() - started
    assert len(items) == len(applied) - 1
    assert outcome.attempts == 1
    # Baseline: the same spec documents, one raw transaction, no parsing or validation.
    docs = [c.after for c in outcome.plan.changes if c.after is not None]
    async with EtcdStore([endpoint], cluster + "-raw") as raw:
        started = time.perf_counter()
        await raw.commit([Put(f"specs/x/{i}", doc) for i, doc in enumerate(docs)])
        raw_s = time.perf_counter() - started
    return {
        "parse_s": parse_s,
        "decode_s": decode_s,
        "apply_s": apply_s,
        "txns": txns,
        "ranges": ranges,
        "list_s": list_s,
        "raw_s": raw_s,
    }


def cli_seconds(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([HA, *args], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, proc.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=RESULTS / "apply.json")
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    with EtcdServer() as server, tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.repeat):
            cluster = f"bench{round_no}"
            path = Path(tmp) / f"{cluster}.yaml"
            path.write_text(manifest(cluster, args.groups))
            size = path.stat().st_size
            result = asyncio.run(one_round(server.endpoint, path, cluster))
            env = {
                **os.environ,
                "VIGIL_ENDPOINTS": server.endpoint,
                "VIGIL_CLUSTER": cluster,
                "VIGIL_CONFIG": "/dev/null",
            }
            cli_apply_cluster = cluster + "cli"
            cli_path = Path(tmp) / f"{cli_apply_cluster}.yaml"
            cli_path.write_text(manifest(cli_apply_cluster, args.groups))
            cli_env = {**env, "VIGIL_CLUSTER": cli_apply_cluster}
            result["cli_apply_s"], out = cli_seconds(["apply", "-f", str(cli_path)], cli_env)
            assert out.count(" created") == args.groups + 1
            result["cli_get_s"], out = cli_seconds(["get", "rg"], env)
            assert len(out.splitlines()) == args.groups + 1
            result["cli_get_json_s"], _ = cli_seconds(["get", "rg", "-o", "json"], env)
            result["manifest_bytes"] = size
            rows.append(result)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {
        "groups": args.groups,
        "rounds": args.repeat,
        "manifest_bytes": rows[0]["manifest_bytes"],
        "etcd_txns_per_apply": rows[0]["txns"],
        "etcd_ranges_per_apply": rows[0]["ranges"],
        "apply_s_median": med("apply_s"),
        "raw_commit_s_median": med("raw_s"),
        "apply_vs_raw_commit": med("apply_s") / med("raw_s"),
        "list_1000_s_median": med("list_s"),
        "cli_apply_s_median": med("cli_apply_s"),
        "cli_get_table_s_median": med("cli_get_s"),
        "cli_get_json_s_median": med("cli_get_json_s"),
        "rounds_detail": rows,
    }
    print(
        f"ha apply of {args.groups} ResourceGroups ({summary['manifest_bytes']} bytes of YAML), "
        f"median of {args.repeat} rounds"
    )
    table = [
        ("parse YAML (in-process)", f"{med('parse_s'):.3f} s"),
        ("decode into typed objects (in-process)", f"{med('decode_s'):.3f} s"),
        ("apply (in-process: read, validate, plan, commit)", f"{med('apply_s'):.3f} s"),
        ("  etcd transactions per apply", str(rows[0]["txns"])),
        ("  etcd range reads per apply", str(rows[0]["ranges"])),
        ("baseline: same documents, one raw etcd txn", f"{med('raw_s'):.3f} s"),
        ("  apply / baseline", f"{summary['apply_vs_raw_commit']:.1f}x"),
        ("list all groups (in-process)", f"{med('list_s'):.3f} s"),
        ("ha apply -f (process, end to end)", f"{med('cli_apply_s'):.3f} s"),
        ("ha get rg (process, table)", f"{med('cli_get_s'):.3f} s"),
        ("ha get rg -o json (process)", f"{med('cli_get_json_s'):.3f} s"),
    ]
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"  {key.ljust(width)}  {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

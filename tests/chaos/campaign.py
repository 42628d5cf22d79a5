"""A seeded fault campaign against a three-node lab cluster.

    bash scripts/run-chaos --faults N --seed S [--timing default|tuned] [--json PATH]

Three groups (an HTTP service behind a VIP each) run on a lab cluster. Independent
observers, started before the first fault and stopped after the last, sample every node's
addresses (lab/observer.py) and service processes (observers.py) every 20 ms, and a client
asks every VIP every 20 ms. The campaign injects one fault at a time at a random moment
(faults.py), heals it, and waits until the cluster converged again. The same seed gives
the same faults, targets and hold times. It prints a table per fault kind, writes JSON,
and exits 1 if any group was ever active on two nodes or the cluster did not converge.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.cluster import DEFAULT_TIMING, HTTP_ECHO, TUNED_TIMING, VigilLab
from lab.errors import LabError
from lab.observer import VipObserver
from lab.testing import unique_lab_name
from tests.chaos.faults import KINDS, Injector, etcd_leader
from tests.chaos.observers import ClientView, ServiceObserver
from tests.chaos.report import (
    DualActive,
    FaultResult,
    intervals,
    longest_gap,
    summarize,
    table,
    to_json,
    within,
)

RESULTS = Path(__file__).parent / "results"
TIMINGS = {"default": DEFAULT_TIMING, "tuned": TUNED_TIMING}
PERIOD = 0.02  # seconds between observer rounds


@dataclass(frozen=True)
class Group:
    name: str
    host: int  # the VIP is the lab subnet's .host
    port: int


GROUPS = (Group("web-a", 100, 8081), Group("web-b", 101, 8082), Group("web-c", 102, 8083))


class Campaign:
    def __init__(self, lab: VigilLab, seed: int, converge_limit: float) -> None:
        self.lab = lab
        self.rng = random.Random(seed)
        self.converge_limit = converge_limit
        self.injector = Injector(lab, self.rng)
        self.vips = {g.name: VipObserver(lab, lab.vip(g.host), PERIOD) for g in GROUPS}
        markers = {g.name: f"{HTTP_ECHO}\0{g.port}".encode() for g in GROUPS}
        self.services = ServiceObserver(lab.lab, markers, PERIOD)
        self.client = ClientView(lab.lab, {g.name: (lab.vip(g.host), g.port) for g in GROUPS})
        self.results: list[FaultResult] = []

    # -- the cluster's state --------------------------------------------------------------

    def check(self) -> list[str]:
        """What is not converged yet (empty: converged)."""
        try:
            status = self.lab.status()
        except (LabError, subprocess.TimeoutExpired, ValueError) as exc:
            return [f"ha status: {exc}"]
        wrong = [f"node {n['name']} {n['state']}" for n in status["nodes"] if n["state"] != "Ready"]
        wrong += [f"node {n['name']} agent" for n in status["nodes"] if not n["agent"]]
        where = self.services.where()
        recent = time.monotonic() - 0.3
        for g in status["groups"]:
            name, node = g["name"], g["running"]
            if g["phase"] != "Running" or node is None or node != g["placed"]:
                wrong.append(f"{name} {g['phase']} on {node} (placed {g['placed']})")
            elif where.get(name) != frozenset({node}):
                wrong.append(f"{name} service on {sorted(where.get(name, ()))}")
            elif self.vips[name].holders() != frozenset({node}):
                wrong.append(f"{name} VIP on {sorted(self.vips[name].holders())}")
            elif self.client.latest(name, recent) != node:
                wrong.append(f"{name} answered by {self.client.latest(name, recent)}")
        return wrong

    def wait_converged(
        self, limit: float, trace: list[tuple[float, list[str]]] | None = None
    ) -> tuple[float | None, list[str]]:
        started = time.monotonic()
        wrong: list[str] = []
        while time.monotonic() - started < limit:
            wrong = self.check()
            if trace is not None and (not trace or trace[-1][1] != wrong):
                trace.append((round(time.monotonic() - started, 2), wrong))
            if not wrong:
                return time.monotonic() - started, []
            time.sleep(0.2)
        return None, wrong

    def running_nodes(self) -> list[str]:
        return sorted({n for nodes in self.services.where().values() for n in nodes})

    # -- the campaign -----------------------------------------------------------------------

    def setup(self) -> None:
        for g in GROUPS:
            result = self.lab.apply(self.lab.web_group(g.name, g.host, g.port))
            if result.code != 0:
                raise LabError(f"applying {g.name}: {result.err}")
        for vip in self.vips.values():
            vip.start()
        self.services.start()
        self.client.start()
        took, wrong = self.wait_converged(120)
        if took is None:
            raise LabError(f"the groups did not start: {wrong}")

    def target(self, kind: str) -> str:
        nodes = self.lab.nodes
        if kind.startswith("etcd") and self.rng.random() < 0.5:
            leader = etcd_leader(self.lab)
            return leader if leader in nodes else self.rng.choice(nodes)
        running = self.running_nodes()
        if running and self.rng.random() < 0.8:
            return self.rng.choice(running)
        return self.rng.choice(nodes)

    def one(self, index: int, kind: str) -> FaultResult:
        time.sleep(self.rng.uniform(0.0, 1.5))  # a random moment
        node = self.target(kind)
        ran = sorted(g for g, nodes in self.services.where().items() if node in nodes)
        started = time.monotonic()
        detail = self.injector.run(kind, node)
        healed = time.monotonic()
        trace: list[tuple[float, list[str]]] = []
        took, wrong = self.wait_converged(self.converge_limit, trace)
        return FaultResult(
            index, kind, node, detail, started, healed, took, wrong, target_ran=ran, trace=trace
        )

    def order(self, faults: int, kinds: list[str]) -> list[str]:
        """Every kind once per round, in an order the seed shuffles: a short campaign
        covers every kind."""
        out: list[str] = []
        while len(out) < faults:
            block = list(kinds)
            self.rng.shuffle(block)
            out += block
        return out[:faults]

    def run(self, faults: int, kinds: list[str]) -> list[FaultResult]:
        self.setup()
        for index, kind in enumerate(self.order(faults, kinds), start=1):
            result = self.one(index, kind)
            self.results.append(result)
            state = (
                f"converged in {result.converged_after:.2f} s"
                if result.converged_after is not None
                else f"NOT converged within {self.converge_limit:.0f} s: {result.not_running}"
            )
            ran = ", ".join(result.target_ran) or "nothing"
            print(f"  [{index}/{faults}] {kind} on {result.target} (running {ran}): "
                  f"{result.detail}; {state}", flush=True)  # fmt: skip
        return self.results

    def stop(self) -> None:
        for vip in self.vips.values():
            vip.stop()
        self.services.stop()
        self.client.stop()

    def attribute(self) -> list[DualActive]:
        """Put each dual-active interval and the client's gaps on the fault during whose
        window (its start to the next one's) it happened; return those before any fault."""
        found: list[DualActive] = []
        for name, vip in self.vips.items():
            found += intervals(f"vip {name}", [(t, h) for t, h in vip.overlaps], PERIOD)
        for g in GROUPS:
            rounds = [(t, nodes) for t, group, nodes in self.services.overlaps if group == g.name]
            found += intervals(f"service {g.name}", rounds, PERIOD)
        ends = [r.started for r in self.results[1:]] + [time.monotonic()]
        for result, end in zip(self.results, ends, strict=True):
            result.dual_active = within(found, result.started, end)
            stop = result.healed + (result.converged_after or self.converge_limit)
            result.client_gaps = {
                g.name: longest_gap(self.client.series(g.name), result.started, stop)
                for g in GROUPS
            }
            result.longest_client_gap = max(result.client_gaps.values())
        first = self.results[0].started if self.results else time.monotonic()
        return [d for d in found if d.start < first]


def run_campaign(
    faults: int,
    seed: int,
    *,
    timing: str = "default",
    kinds: list[str] | None = None,
    converge_limit: float = 60.0,
) -> tuple[list[FaultResult], list[DualActive], dict[str, Any]]:
    """Build a lab, run the campaign, tear the lab down; the results, the dual-active
    intervals seen before the first fault, and the observers' own figures."""
    lab = VigilLab(unique_lab_name("chaos"), 3, timing=TIMINGS[timing])
    lab.up()
    campaign = Campaign(lab, seed, converge_limit)
    try:
        try:
            campaign.run(faults, kinds or list(KINDS))
        finally:
            campaign.stop()
        before = campaign.attribute()
    finally:
        lab.down()
    observers = {
        "service_rounds": campaign.services.rounds,
        "service_longest_round_s": campaign.services.longest_round,
        "vip_longest_interval_s": max(v.max_interval() for v in campaign.vips.values()),
        "vip_unreadable": sum(len(v.errors) for v in campaign.vips.values()),
    }
    return campaign.results, before, observers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timing", choices=sorted(TIMINGS), default="default")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, help="default: every kind")
    parser.add_argument("--converge-limit", type=float, default=60.0)
    parser.add_argument("--json", type=Path, help="default: tests/chaos/results/chaos-SEED.json")
    args = parser.parse_args(argv)
    print(f"== chaos: {args.faults} faults, seed {args.seed}, {args.timing} timings", flush=True)
    results, before, observers = run_campaign(
        args.faults, args.seed, timing=args.timing, kinds=args.kinds,
        converge_limit=args.converge_limit,
    )  # fmt: skip
    rows = summarize(results)
    sys.stdout.write(table(rows))
    print(
        f"observers: {observers['service_rounds']} service rounds (longest "
        f"{observers['service_longest_round_s'] * 1000:.0f} ms), longest VIP interval "
        f"{observers['vip_longest_interval_s'] * 1000:.0f} ms; dual-active before the first "
        f"fault: {len(before)}"
    )
    for r in results:
        for d in r.dual_active:
            print(f"DUAL-ACTIVE during fault {r.index} ({r.kind} on {r.target}): {d.what} on "
                  f"{', '.join(d.nodes)} for {d.end - d.start:.3f} s")  # fmt: skip
    path = args.json or RESULTS / f"chaos-{args.seed}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    settings = {"faults": args.faults, "seed": args.seed, "timing": args.timing,
                "kinds": args.kinds or list(KINDS), "observers": observers}  # fmt: skip
    document = to_json(results, settings)
    document["dual_active_before_first_fault"] = [d.__dict__ for d in before]
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path}")
    total = rows[-1]
    failed = total["dual_active"] or total["not_converged"] or before
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

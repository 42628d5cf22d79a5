"""Writes vigil-dashboard.json, the Grafana dashboard of Vigil's metrics (docs/metrics.md).

    python3 deploy/grafana/generate.py           # write the dashboard next to this file
    python3 deploy/grafana/generate.py --check   # exit 1 if the checked-in file differs

Per-agent metrics carry no node label: the queries join them with vigil_agent_info on the
scrape target to name the node and to filter by the dashboard's node variable. Checked by
tests/unit/test_grafana_dashboard.py (every query against the metrics catalog).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("vigil-dashboard.json")
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
WIDTH = 24

CLUSTER = 'cluster=~"$cluster"'
AGENTS = f'max by (job, instance, node) (vigil_agent_info{{{CLUSTER}, node=~"$node"}})'
GROUPS = f'{CLUSTER}, group=~"$group"'
RATE = "[$__rate_interval]"
FAILED = 'result="failure"'

Panel = dict[str, Any]


def on_node(expr: str) -> str:
    """A per-agent expression with the agent's node label, for the chosen nodes only."""
    return f"({expr}) * on (job, instance) group_left (node) {AGENTS}"


def quantile(q: float, bucket: str, by: str) -> str:
    rate = on_node(f"rate({bucket}_bucket{RATE})")
    return f"histogram_quantile({q}, sum by (le{', ' if by else ''}{by}) ({rate}))"


def target(expr: str, legend: str, ref: str = "A", instant: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
    }
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def panel(
    kind: str, title: str, targets: list[dict[str, Any]], w: int, h: int, **extra: Any
) -> Panel:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    p: Panel = {"type": kind, "title": title, "datasource": DATASOURCE, "targets": targets}
    p["gridPos"] = {"w": w, "h": h}
    unit = extra.pop("unit", None)
    p["fieldConfig"] = {"defaults": {"unit": unit} if unit else {}, "overrides": []}
    p.update(extra)
    return p


def series(title: str, targets: list[dict[str, Any]], unit: str = "short", w: int = 12) -> Panel:
    return panel("timeseries", title, targets, w, 8, unit=unit)


def timeline(title: str, targets: list[dict[str, Any]], w: int = 12) -> Panel:
    return panel(
        "state-timeline",
        title,
        targets,
        w,
        8,
        options={"showValue": "never", "mergeValues": True, "rowHeight": 0.8},
    )


def stat(title: str, targets: list[dict[str, Any]], w: int = 6, text: bool = False) -> Panel:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"]},
        "textMode": "name" if text else "value_and_name",
    }
    return panel("stat", title, targets, w, 5, options=options)


def rows() -> list[tuple[str, list[Panel]]]:
    nodes = f'max by (node, phase) (vigil_node_phase{{{CLUSTER}, node=~"$node"}}) == 1'
    groups = f"max by (group, phase) (vigil_group_phase{{{GROUPS}}}) == 1"
    return [
        (
            "Cluster",
            [
                stat(
                    "Nodes by phase",
                    [target(f"count by (phase) ({nodes})", "{{phase}}", instant=True)],
                ),
                stat(
                    "Leader",
                    [
                        target(
                            f"max by (node) (vigil_leader{{{CLUSTER}}}) == 1",
                            "{{node}}",
                            instant=True,
                        )
                    ],
                    text=True,
                ),
                stat(
                    "Agents answering",
                    [target(f'sum(up{{job="vigil-agent", {CLUSTER}}})', "up", instant=True)],
                ),
                stat(
                    "Groups by phase",
                    [target(f"count by (phase) ({groups})", "{{phase}}", instant=True)],
                ),
                timeline("Node phase", [target(nodes, "{{node}} {{phase}}")], w=24),
            ],
        ),
        (
            "Groups",
            [
                timeline("Group phase", [target(groups, "{{group}} {{phase}}")]),
                timeline(
                    "Group placement",
                    [
                        target(
                            f"max by (group, node) (vigil_group_placed{{{GROUPS}}}) == 1",
                            "{{group}} on {{node}}",
                        )
                    ],
                ),
                series(
                    "Placement changes (1 h)",
                    [
                        target(
                            f"max by (group) "
                            f"(increase(vigil_placement_changes_total{{{GROUPS}}}[1h]))",
                            "{{group}}",
                        )
                    ],
                ),
                series(
                    "Resource action failures (1 h)",
                    [
                        target(
                            f"sum by (group, resource, action) "
                            f"(increase(vigil_resource_action_failures_total{{{GROUPS}}}[1h]))",
                            "{{group}}/{{resource}} {{action}}",
                        )
                    ],
                ),
                series(
                    "Probe failures",
                    [
                        target(
                            f"sum by (group, resource) "
                            f"(rate(vigil_probe_results_total{{{GROUPS}, {FAILED}}}{RATE}))",
                            "{{group}}/{{resource}}",
                        )
                    ],
                    unit="ops",
                ),
                series(
                    "Failovers (1 h)",
                    [
                        target(
                            f"sum({on_node('increase(vigil_failover_duration_seconds_count[1h])')})",
                            "failovers",
                        )
                    ],
                ),
            ],
        ),
        (
            "Durations",
            [
                series(
                    "Failover duration (lost node seen to group running)",
                    [
                        target(
                            quantile(q, "vigil_failover_duration_seconds", ""), f"p{round(q * 100)}"
                        )
                        for q in (0.5, 0.9, 0.99)
                    ],
                    unit="s",
                ),
                series(
                    "Resource action duration p90",
                    [
                        target(
                            quantile(0.9, "vigil_resource_action_duration_seconds", "action, type"),
                            "{{type}} {{action}}",
                        )
                    ],
                    unit="s",
                ),
            ],
        ),
        (
            "Heartbeats",
            [
                series(
                    "Heartbeat round trip",
                    [
                        target(
                            on_node("vigil_heartbeat_rtt_seconds"), "{{node}} → {{peer}} ({{link}})"
                        )
                    ],
                    unit="s",
                ),
                series(
                    "Heartbeats missed",
                    [
                        target(
                            on_node(f"rate(vigil_heartbeat_missed_total{RATE})"),
                            "{{node}} ← {{peer}} ({{link}})",
                        )
                    ],
                    unit="ops",
                ),
                timeline(
                    "Links hearing the peer",
                    [target(on_node("vigil_heartbeat_link_up"), "{{node}} ← {{peer}} ({{link}})")],
                ),
                series(
                    "Packets refused",
                    [
                        target(
                            on_node(f"rate(vigil_heartbeat_rejected_total{RATE})"),
                            "{{node}} {{link}} {{reason}}",
                        )
                    ],
                    unit="ops",
                ),
            ],
        ),
        (
            "Store and etcd",
            [
                series(
                    "Store request latency p99",
                    [
                        target(
                            quantile(0.99, "vigil_store_request_duration_seconds", "node, op"),
                            "{{node}} {{op}}",
                        )
                    ],
                    unit="s",
                ),
                series(
                    "Store request errors",
                    [
                        target(
                            on_node(f"rate(vigil_store_request_errors_total{RATE})"),
                            "{{node}} {{op}}",
                        )
                    ],
                    unit="ops",
                ),
                timeline(
                    "etcd member has a leader",
                    [target(on_node("vigil_etcd_member_healthy"), "{{node}}")],
                    w=8,
                ),
                series(
                    "etcd leader changes (1 h)",
                    [target(on_node("increase(vigil_etcd_leader_changes_total[1h])"), "{{node}}")],
                    w=8,
                ),
                series(
                    "etcd database size",
                    [target(on_node("vigil_etcd_db_size_bytes"), "{{node}}")],
                    unit="bytes",
                    w=8,
                ),
            ],
        ),
        (
            "Replicated volumes",
            [
                timeline(
                    "Volume role",
                    [target(on_node("vigil_volume_role == 1"), "{{node}} {{volume}} {{role}}")],
                    w=8,
                ),
                timeline(
                    "Connection",
                    [
                        target(
                            on_node("vigil_volume_connection_state == 1"),
                            "{{node}} {{volume}} {{state}}",
                        )
                    ],
                    w=8,
                ),
                timeline(
                    "Disks (local, peer)",
                    [
                        target(
                            on_node("vigil_volume_disk_state == 1"), "{{node}} {{volume}} {{state}}"
                        ),
                        target(
                            on_node("vigil_volume_peer_disk_state == 1"),
                            "{{node}} {{volume}} peer {{state}}",
                        ),
                    ],
                    w=8,
                ),
                series(
                    "Out of sync",
                    [target(on_node("vigil_volume_out_of_sync_bytes"), "{{node}} {{volume}}")],
                    unit="bytes",
                    w=8,
                ),
                series(
                    "Resync rate",
                    [
                        target(
                            on_node("vigil_volume_sync_rate_bytes_per_second"),
                            "{{node}} {{volume}}",
                        ),
                        target(
                            on_node("vigil_volume_resync_rate_limit_bytes_per_second > 0"),
                            "{{node}} {{volume}} limit",
                        ),
                    ],
                    unit="Bps",
                    w=8,
                ),
                series(
                    "Resync ETA",
                    [target(on_node("vigil_volume_sync_eta_seconds"), "{{node}} {{volume}}")],
                    unit="s",
                    w=8,
                ),
                series(
                    "Replicated bytes",
                    [
                        target(
                            on_node(f"rate(vigil_volume_wire_sent_bytes_total{RATE})"),
                            "{{node}} {{volume}} sent",
                        ),
                        target(
                            on_node(f"rate(vigil_volume_wire_received_bytes_total{RATE})"),
                            "{{node}} {{volume}} received",
                        ),
                    ],
                    unit="Bps",
                ),
                timeline(
                    "Replica answers the agent",
                    [target(on_node("vigil_volume_status_up"), "{{node}} {{volume}}")],
                ),
            ],
        ),
        (
            "Fencing and agents",
            [
                series(
                    "Fence attempts by result (1 h)",
                    [
                        target(
                            on_node("increase(vigil_fence_attempts_total[1h])"),
                            "{{node}} {{device}} {{action}} {{result}}",
                        )
                    ],
                    w=8,
                ),
                series(
                    "Agent CPU",
                    [target(on_node(f"rate(vigil_process_cpu_seconds_total{RATE})"), "{{node}}")],
                    unit="percentunit",
                    w=8,
                ),
                series(
                    "Agent memory",
                    [target(on_node("vigil_process_resident_memory_bytes"), "{{node}}")],
                    unit="bytes",
                    w=8,
                ),
            ],
        ),
    ]


def layout(sections: list[tuple[str, list[Panel]]]) -> list[Panel]:
    """Rows one under the other, each row's panels left to right, wrapping at 24."""
    out: list[Panel] = []
    y = 0
    for title, panels in sections:
        out.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"x": 0, "y": y, "w": WIDTH, "h": 1},
            }
        )
        y += 1
        x = 0
        line = 0
        for p in panels:
            w, h = p["gridPos"]["w"], p["gridPos"]["h"]
            if x + w > WIDTH:
                x, y, line = 0, y + line, 0
            p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
            x += w
            line = max(line, h)
            out.append(p)
        y += line
    for i, p in enumerate(out, start=1):
        p["id"] = i
    return out


def variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


def dashboard() -> dict[str, Any]:
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "title": "Vigil",
        "uid": "vigil-cluster",
        "description": (
            "Vigil clusters: nodes, groups, heartbeats, store, volumes, fencing "
            "(docs/metrics.md, docs/alerts.md)."
        ),
        "tags": ["vigil", "ha"],
        "schemaVersion": 38,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                variable("cluster", "Cluster", 'label_values(up{job="vigil-agent"}, cluster)'),
                variable("node", "Node", f"label_values(vigil_agent_info{{{CLUSTER}}}, node)"),
                variable("group", "Group", f"label_values(vigil_group_phase{{{CLUSTER}}}, group)"),
            ]
        },
        "panels": layout(rows()),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the file differs")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

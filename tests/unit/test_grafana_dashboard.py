"""deploy/grafana/vigil-dashboard.json: what generate.py writes, valid for Grafana's
import (ids, grid, variables), and every query naming only metrics of the catalog."""

from __future__ import annotations

import importlib.util
import json
import re
from types import ModuleType
from typing import Any

import pytest

from nodeagent.metrics import catalog
from tests.paths import REPO
from tests.promql_names import all_labels, names

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "vigil-dashboard.json"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vigil_dashboard", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every panel target."""
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]


def test_the_checked_in_dashboard_is_the_generators() -> None:
    assert DASHBOARD.read_text() == generator().render(), "run python3 deploy/grafana/generate.py"
    assert generator().main(["--check"]) == 0


def test_panels_have_unique_ids_and_sane_positions() -> None:
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 39
    panels = board["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for p in panels:
        pos = p["gridPos"]
        assert set(pos) == {"x", "y", "w", "h"}, p["title"]
        assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] > 0 and pos["h"] > 0, p["title"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                 for y in range(pos["y"], pos["y"] + pos["h"])}  # fmt: skip
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), p["title"]


def test_variables() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert {"node", "group"} <= set(variables)
    used = " ".join(expr for _, expr in queries(board))
    for name, v in variables.items():
        if v["type"] == "query":
            match = re.fullmatch(r"label_values\((.+), (\w+)\)", v["definition"])
            assert match, name
            assert not names(match.group(1)).errors, name
            assert match.group(2) in all_labels(), name
            assert f"${name}" in used, f"variable {name} filters nothing"


def test_every_query_names_only_catalog_metrics() -> None:
    board = dashboard()
    used: set[str] = set()
    for title, expr in queries(board):
        found = names(expr)
        assert not found.errors, (title, found.errors)
        assert found.metrics, title
        used |= found.metrics
    for metric in used - {"up"}:
        assert metric in catalog.BY_NAME or metric.removesuffix("_bucket") in catalog.BY_NAME \
            or metric.removesuffix("_count") in catalog.BY_NAME, metric  # fmt: skip
    # The panels the dashboard promises, by the metric each reads.
    for metric in ("vigil_node_phase", "vigil_leader", "vigil_group_phase",
                   "vigil_group_placed", "vigil_failover_duration_seconds_bucket",
                   "vigil_resource_action_duration_seconds_bucket", "vigil_heartbeat_rtt_seconds",
                   "vigil_heartbeat_missed_total", "vigil_store_request_duration_seconds_bucket",
                   "vigil_etcd_member_healthy", "vigil_volume_role",
                   "vigil_volume_connection_state", "vigil_volume_out_of_sync_bytes",
                   "vigil_volume_sync_rate_bytes_per_second", "vigil_volume_sync_eta_seconds",
                   "vigil_volume_wire_sent_bytes_total", "vigil_fence_attempts_total"):  # fmt: skip
        assert metric in used, metric


def test_per_agent_metrics_are_joined_to_their_node() -> None:
    """A metric without a node label is shown by node: joined with vigil_agent_info."""
    for title, expr in queries(dashboard()):
        for metric in names(expr).metrics - {"up", "vigil_agent_info"}:
            m = catalog.BY_NAME.get(re.sub(r"_(bucket|count|sum)$", "", metric))
            assert m is not None, metric
            if "node" not in m.labels and not {"group", "phase"} & set(m.labels):
                assert "group_left (node)" in expr and "vigil_agent_info" in expr, title


@pytest.mark.parametrize(
    "broken",
    ["vigil_heartbeat_rtt_second", 'vigil_node_phase{nodes="x"}', "sum by (grup) (vigil_leader)"],
)
def test_a_wrong_name_in_a_query_is_found(broken: str) -> None:
    board = dashboard()
    board["panels"][1]["targets"][0]["expr"] = broken
    errors = [e for _, expr in queries(board) for e in names(expr).errors]
    assert errors

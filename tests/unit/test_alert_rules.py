"""deploy/prometheus/vigil-alerts.yml against the metrics catalog, and its promtool unit
tests (deploy/prometheus/tests/) covering every alert both ways. promtool itself runs
them in tests/integration/test_promtool.py."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from blockrepl.cli import build_parser as blockrepl_parser
from controller.api.registry import resolve_kind
from controller.cli.main import build_parser as ha_parser
from nodeagent.metrics import catalog
from tests.paths import REPO
from tests.promql_names import names

RULES = REPO / "deploy" / "prometheus" / "vigil-alerts.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "tests"


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.yml"))


def test_every_name_in_the_rules_is_in_the_catalog() -> None:
    used: set[str] = set()
    for rule in alert_rules():
        found = names(rule["expr"])
        assert not found.errors, (rule["alert"], found.errors)
        assert found.metrics, rule["alert"]
        used |= found.metrics
    assert used - {"up"} <= set(catalog.BY_NAME)
    # Each part of the catalog the alerts are about is read by at least one rule.
    for metric in ("vigil_node_phase", "vigil_group_phase", "vigil_leader",
                   "vigil_etcd_member_healthy", "vigil_heartbeat_link_up",
                   "vigil_heartbeat_missed_total", "vigil_volume_connection_state",
                   "vigil_volume_peer_disk_state", "vigil_volume_sync_active",
                   "vigil_fence_attempts_total", "vigil_placement_changes_total"):  # fmt: skip
        assert metric in used, metric


@pytest.mark.parametrize(
    ("expr", "error"),
    [
        ('vigil_node_phaze{phase="Lost"} == 1', "vigil_node_phaze: not a metric"),
        ('vigil_node_phase{state="Lost"} == 1', "no label 'state'"),
        ("max by (nodes) (vigil_node_phase) == 1", "by (nodes)"),
        ("rate(vigil_leader_bucket[5m])", "vigil_leader_bucket: not a metric"),
        ("upp == 0", "upp: not a metric"),
    ],
)
def test_the_name_check_finds_a_wrong_name(expr: str, error: str) -> None:
    assert any(error in e for e in names(expr).errors), names(expr).errors


def test_every_alert_has_a_duration_a_severity_and_a_runbook() -> None:
    rules = alert_rules()
    assert len({r["alert"] for r in rules}) == len(rules), "an alert name used twice"
    for rule in rules:
        name = rule["alert"]
        assert name.startswith("Vigil"), name
        assert "for" in rule, name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description"}, name
        # What to do: the command to look with.
        assert "`ha " in annotations["description"], name


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in rule_test_files():
        doc = yaml.safe_load(path.read_text())
        assert doc["rule_files"] == ["../vigil-alerts.yml"], path
        for case in doc["tests"]:
            for check in case["alert_rule_test"]:
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {r["alert"] for r in alert_rules()}
    assert alerts - firing == set(), "alerts never seen firing"
    assert alerts - quiet == set(), "alerts never seen quiet"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_the_runbook_commands_exist() -> None:
    """The ha and blockrepl commands the descriptions name are real subcommands."""
    text = " ".join(r["annotations"]["description"] for r in alert_rules())
    ha = _subcommands(ha_parser())
    blockrepl = _subcommands(blockrepl_parser())
    for word in re.findall(r"`ha ([a-z-]+)", text):
        assert word in ha, f"ha {word}"
    # ha describe/events KIND: a kind ha knows (rg, rv, node).
    for kind in re.findall(r"`ha (?:describe|events) ([a-z]+)", text):
        resolve_kind(kind)
    for word in re.findall(r"`blockrepl ([a-z-]+)", text):
        assert word in blockrepl, f"blockrepl {word}"


def _subcommands(parser: argparse.ArgumentParser) -> set[str]:
    out: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out |= set(action.choices)
    return out


def test_the_documentation_lists_every_alert() -> None:
    doc = (REPO / "docs" / "alerts.md").read_text()
    rows = re.findall(r"^\| `(Vigil\w+)` \| (\w+) \|", doc, re.MULTILINE)
    assert rows == [(r["alert"], r["labels"]["severity"]) for r in alert_rules()]

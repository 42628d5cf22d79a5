"""promtool on deploy/prometheus/ and deploy/grafana/: the rules load, their unit tests
pass, and those tests fail when an alert's expression never fires or always fires (so
each alert's firing case and quiet case really check it); every dashboard query parses.
promtool: Debian package prometheus (scripts/setup)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.paths import REPO

PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "vigil-alerts.yml"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; scripts/setup)"
)


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def alert_names() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["alert"] for group in doc["groups"] for rule in group["rules"]]


def test_the_rules_load() -> None:
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in done.stdout


def test_the_scrape_example_loads_with_the_rules() -> None:
    # check config also loads every rule file the config names, relative to it.
    done = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    rules = sum(len(g["rules"]) for g in yaml.safe_load(RULES.read_text())["groups"])
    assert f"SUCCESS: {rules} rules found" in done.stdout, done.stdout


def test_the_rules_unit_tests_pass() -> None:
    files = sorted(p.name for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert files
    done = promtool("test", "rules", *files, cwd=PROMETHEUS / "tests")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(files), done.stdout


def mutated_failures(tmp_path: Path, expr: str, *, firing: bool) -> set[str]:
    """The alerts whose firing cases (or quiet cases) fail when every alert's expression
    is `expr`."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            rule["expr"] = expr
    (tmp_path / "vigil-alerts.yml").write_text(yaml.safe_dump(doc))
    tests = tmp_path / "tests"
    tests.mkdir()
    for path in sorted((PROMETHEUS / "tests").glob("*.yml")):
        case_file = yaml.safe_load(path.read_text())
        for case in case_file["tests"]:
            case["alert_rule_test"] = [
                check for check in case["alert_rule_test"] if bool(check["exp_alerts"]) == firing
            ]
        (tests / path.name).write_text(yaml.safe_dump(case_file))
    done = promtool("test", "rules", *sorted(p.name for p in tests.glob("*.yml")), cwd=tests)
    assert done.returncode != 0
    return set(re.findall(r"alertname: (\w+), time:", done.stdout + done.stderr))


def test_an_alert_that_never_fires_fails_its_firing_case(tmp_path: Path) -> None:
    assert mutated_failures(tmp_path, "vector(1) == 0", firing=True) == set(alert_names())


def test_an_alert_that_always_fires_fails_its_quiet_case(tmp_path: Path) -> None:
    assert mutated_failures(tmp_path, "vector(1)", firing=False) == set(alert_names())


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Grafana's variables filled in, each query of the dashboard as a recording rule."""
    board = json.loads((REPO / "deploy" / "grafana" / "vigil-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs
    rules = []
    for i, expr in enumerate(exprs):
        expr = expr.replace("$__rate_interval", "5m")
        expr = re.sub(r"\$(cluster|node|group)\b", ".*", expr)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout

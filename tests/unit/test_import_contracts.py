"""The import contracts in pyproject.toml hold, and they would catch each import that the
layering removed if it came back (docs/architecture.md, "Layers").

Each case copies the packages to a scratch directory, adds one forbidden import to one
module, and runs lint-imports there: the contract named must break.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO

LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("controller", "nodeagent", "blockrepl", "lab")

# (module file, the import it once had, the contract that must catch it)
REMOVED = [
    ("controller/bootstrap/node_config.py", "import nodeagent.etcd_member", "products"),
    ("controller/cli/cluster_cmd.py", "import nodeagent.etcd_member", "products"),
    ("controller/bootstrap/leave.py", "import nodeagent.bootstrap", "products"),
    ("controller/api/volume.py", "import blockrepl.replication.splitbrain_policy", "products"),
    ("controller/cli/main.py", "import lab.cli", "products"),
    ("controller/api/liveness.py", "import controller.leader.decide", "control-plane"),
    ("controller/bootstrap/join_server.py", "import controller.cli.output", "control-plane"),
    ("controller/leader/decide.py", "import controller.apply.simulate", "control-plane"),
    ("blockrepl/replication/outdate_cli.py", "import controller.cli.main", "blockrepl"),
    ("nodeagent/reconciler/loop.py", "import controller.leader.decide", "node-side"),
    ("nodeagent/reconciler/plan.py", "import nodeagent.actuators.base", "pure"),
    ("controller/leader/decide.py", "import controller.store.informer", "pure"),
    ("controller/scheduler/schedule.py", "import controller.api.group", "scheduler-core"),
    # Never there, kept out the same way: an importer running `ha` code or a process.
    ("controller/importers/heartbeat.py", "import controller.cli.output", "control-plane"),
    ("controller/importers/drbd.py", "import subprocess", "pure"),
    # Never there either: the status page builds ha status's document from controller.status,
    # which is below ha, and renders it without I/O.
    ("nodeagent/web/source.py", "import controller.cli.status_view", "agent-not-cli"),
    ("controller/status/document.py", "import controller.cli.output", "control-plane"),
    ("nodeagent/web/page.py", "import asyncio", "pure"),
]


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT), "--no-logo", "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(("module", "line", "contract"), REMOVED, ids=lambda v: str(v))
def test_a_removed_import_coming_back_breaks_its_contract(
    scratch: Path, module: str, line: str, contract: str
) -> None:
    path = scratch / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{line}  # noqa\n")
        result = lint(scratch)
    finally:
        path.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    names = {
        "products": "The product:",
        "control-plane": "The control plane:",
        "blockrepl": "blockrepl leans only",
        "pure": "Pure decision modules",
        "scheduler-core": "The scheduler takes plain values",
        "node-side": "The node converges from placements",
        "agent-not-cli": "The node agent shows the cluster through controller.status",
    }
    assert names[contract] in broken, result.stdout

"""Every agent's status page in a real 3-node lab, before and after the power loss of the
node running a VIP group: `/status.json` on every agent is what `ha status -o json`
prints, and the page names the nodes, the leader and the group where it runs, then the
lost node and the group on the survivor (docs/web.md)."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.cluster import VigilLab
from lab.observer import VipObserver
from lab.testing import unique_lab_name

from .conftest import needs_root
from .helpers import wait_until, watched_lab

pytestmark = [pytest.mark.slow, needs_root]

# Not a port other tests use (9464: the default, 9465: test_metrics.py): the node
# configs' metrics.listen acts for the page too.
LISTEN = "127.0.0.1:9466"


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[VigilLab, VipObserver]]:
    lab = VigilLab(
        unique_lab_name("vw"), 3, disk_root=tmp_path / "disks", metrics={"listen": LISTEN}
    )
    yield from watched_lab(lab)


def served(lab: VigilLab, node: str, path: str) -> str:
    return lab.scrape(node, LISTEN, path=path)


def timeless(document: dict[str, Any]) -> dict[str, Any]:
    """The document without what depends on the moment it was built rather than on the
    store: a down link's `silentFor` (now minus when the link was last heard), which
    `ha status` and an agent, asked a moment apart, compute a moment apart. Nothing else
    in it is computed from the clock in this lab (the failures that count expire by the
    clock, but this test has none; no volume, so no stale replica entry)."""
    out = json.loads(json.dumps(document))
    for row in out["links"]:
        row.pop("silentFor")
    return out


def agreeing(lab: VigilLab, nodes: list[str]) -> dict[str, Any]:
    """`ha status -o json` once every agent's /status.json says the same (each agent
    builds it from its informer's copy of the store, which follows the store within
    moments: retried until the copies caught up)."""

    def attempt() -> dict[str, Any] | None:
        status = timeless(lab.status())
        for node in nodes:
            if timeless(json.loads(served(lab, node, "/status.json"))) != status:
                return None
        return status

    result: dict[str, Any] = wait_until("every agent's /status.json is ha status's", attempt, 30)
    return result


def shows(page: str, *cells: str) -> bool:
    """The page has a table row whose first cells are `cells`, whatever class each has
    (the page puts one row on a line)."""
    want = [html.escape(c) for c in cells]
    for line in page.splitlines():
        if line.startswith("<tr><td"):
            values = [part.rsplit(">", 1)[-1] for part in line.split("</td>")]
            if values[: len(want)] == want:
                return True
    return False


def test_every_agent_serves_what_ha_status_says(vlab: VigilLab, observer: VipObserver) -> None:
    assert vlab.apply(vlab.web_group()).code == 0
    active = vlab.wait_running("web", 30)
    status = agreeing(vlab, vlab.nodes)
    leader = status["leader"]
    assert leader in vlab.nodes

    def page_before(node: str) -> str | None:
        page = served(vlab, node, "/")
        ok = (
            f"leader {leader}" in page
            and all(shows(page, n, "server", "Ready", "connected") for n in vlab.nodes)
            and shows(page, "web", active, active, "Running")
        )
        return page if ok else None

    for node in vlab.nodes:
        page = wait_until(f"{node}'s page shows the cluster", lambda n=node: page_before(n), 30)
        assert '<meta http-equiv="refresh"' in page
        assert f"as agent {node} sees the store" in page
        assert "ResourceGroup/web" in page  # the Placed event, from the store
        assert "<h2>Groups</h2>" in served(vlab, node, "/status")

    vlab.lab.kill(active)
    survivor = vlab.wait_running("web", 30, not_on=active)
    survivors = [n for n in vlab.nodes if n != active]
    status = agreeing(vlab, survivors)
    assert next(n for n in status["nodes"] if n["name"] == active)["state"] == "Lost"
    assert status["links"], status  # the survivors hear the lost node on no link

    def page_after(node: str) -> str | None:
        page = served(vlab, node, "/status")
        ok = shows(page, active, "server", "Lost", "no agent") and shows(
            page, "web", survivor, survivor, "Running"
        )
        return page if ok else None

    for node in survivors:
        page = wait_until(f"{node}'s page shows the failover", lambda n=node: page_after(n), 30)
        assert f"leader {status['leader']}" in page
        assert "PeerSilent" in page  # the heartbeat links to the lost node
    assert observer.holders() == {survivor}

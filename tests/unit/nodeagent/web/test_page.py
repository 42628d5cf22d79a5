"""The status page in HTML, from `ha status`'s own rows: every section, a hostile name
escaped wherever it appears, the empty cluster, the events, a store this agent lost."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from controller.api.cluster import Cluster
from controller.api.decode import decode
from controller.api.group import ResourceGroup
from controller.api.manifest import load
from controller.api.node import NodeStatus
from controller.api.volume import ReplicaStatus, ReplicatedVolume, ReplicatedVolumeStatus
from controller.status.document import status_document
from controller.status.rows import status_rows
from controller.store.fence_record import FenceRecord
from controller.store.objects import make_event
from controller.store.records import NodeRecord, PeerView, PlacementRecord
from controller.store.view import ClusterView
from nodeagent.web.page import EVENTS_SHOWN, REFRESH_SECONDS, Page, render_page
from tests.paths import EXAMPLES

NOW = 1_800_000_000.0
HOSTILE = '<script>alert("x")</script>&<img src=x onerror=alert(1)>'
SECTIONS = ["Nodes", "Heartbeat links down", "Fencing", "Volumes", "Groups", "Events"]


def _hostile(group: ResourceGroup) -> ResourceGroup:
    """The group renamed past the API's name rules: the page must not rely on them."""
    meta = group.metadata.model_copy(update={"name": HOSTILE})
    return group.model_copy(update={"metadata": meta})


def full_view() -> ClusterView:
    """The pg example with something in every section: host-m lost and its fence failed,
    a heartbeat link down, the volume split, and a group with a hostile name."""
    items = [decode(d.data) for d in load([str(EXAMPLES / "pg")])]
    pg = next(o for o in items if isinstance(o, ResourceGroup))
    evil = _hostile(pg)
    dead = PeerView("dead", {"cluster": "down"}, {"cluster": NOW - 9})
    split = {"disk_state": "UpToDate", "connection": "StandAlone", "split_brain": True}
    return ClusterView(
        cluster=next(o for o in items if isinstance(o, Cluster)),
        groups={pg.name: pg, HOSTILE: evil},
        volumes={o.name: o for o in items if isinstance(o, ReplicatedVolume)},
        placements={
            pg.name: PlacementRecord(pg.name, "host-m", 4, "best score"),
            HOSTILE: PlacementRecord(HOSTILE, None, 1, f"no node may run {HOSTILE}"),
        },
        agents={"host-s": NodeRecord("host-s", 1, "v", "i", "s", True, peers={"host-m": dead})},
        node_status={"host-m": NodeStatus(phase="Lost"), "host-s": NodeStatus(phase="Ready")},
        fencing={"host-m": FenceRecord("host-m", "failed", attempts=2, message=HOSTILE)},
        volume_status={
            "pgdata": ReplicatedVolumeStatus(
                replicas=[
                    ReplicaStatus(node="host-m", role="Primary", **split),  # type: ignore[arg-type]
                    ReplicaStatus(node="host-s", role="Secondary", **split),  # type: ignore[arg-type]
                ]
            )
        },
    )


def event(n: int, message: str = "placed") -> dict[str, Any]:
    moment = datetime.fromtimestamp(NOW - 100 + n, UTC)
    made = make_event("ResourceGroup", "pg", "Placed", message, component="controller")
    return replace(made, time=moment).to_dict()


def page(view: ClusterView, **changes: Any) -> str:
    built = Page(
        node="host-s",
        rows=status_rows("c", view, NOW),
        document=status_document("c", view, NOW),
        now=NOW,
        events=[event(1, HOSTILE)],
    )
    return render_page(replace(built, **changes))


def text_of(markup: str) -> str:
    """The page as a browser shows it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


def test_every_section_and_what_ha_status_says_in_it() -> None:
    view = full_view()
    markup = page(view)
    for title in SECTIONS:
        assert re.search(rf"<h2>{re.escape(title)}[ <]", markup), title
    assert f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">' in markup
    shown = text_of(markup)
    rows = status_rows("c", view, NOW)
    assert rows.headline in shown and rows.protection in shown
    for table in (rows.nodes, rows.fencing, rows.volumes, rows.groups):
        for row in table or []:
            for cell in row:
                assert cell in shown, cell
    for line in [*(rows.links or []), *(rows.volume_notes or [])]:
        assert line in shown, line
    assert "waiting for lost host-m to be fenced" in shown  # pg's WHY
    assert "blockrepl resolve --discard-mine" in shown  # the split brain's commands
    assert 'href="/status.json"' in markup


def test_a_hostile_name_is_text_everywhere_it_appears() -> None:
    markup = page(full_view())
    assert "<script" not in markup and "<img" not in markup
    assert markup.count("&lt;script&gt;") >= 4  # group row, its reason, the fence, the event
    assert html.escape(HOSTILE) in markup


def test_the_serving_column_comes_from_the_document() -> None:
    markup = page(full_view())
    [row] = [r for r in markup.split("<tr>") if r.startswith("<td>host-s</td>")]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[:5] == ["host-s", "server", "Ready", "connected", "yes"]


def test_the_empty_cluster() -> None:
    markup = page(ClusterView(), events=[])
    shown = text_of(markup)
    assert "Cluster c: no Cluster object; apply one" in shown
    assert "<h2>Events</h2>" in markup and "none" in shown
    assert "<h2>Nodes</h2>" not in markup


def test_a_cluster_without_groups_says_none() -> None:
    view = replace(full_view(), groups={}, placements={}, volumes={}, fencing={}, agents={})
    markup = page(view)
    groups = markup.split("<h2>Groups</h2>", 1)[1]
    assert groups.startswith("\n<p>none</p>")


def test_the_newest_events_first_and_no_more_than_shown() -> None:
    events = [event(n, f"event {n}") for n in range(EVENTS_SHOWN + 10)]
    shown = text_of(page(full_view(), events=events))
    kept = [int(m) for m in re.findall(r"event (\d+)", shown)]
    assert kept == list(range(EVENTS_SHOWN + 9, 9, -1))


def test_events_the_store_did_not_give() -> None:
    shown = text_of(page(full_view(), events=None, events_error="the store did not answer"))
    assert "events unavailable: the store did not answer" in shown


def test_an_agent_without_the_store_says_its_copy_may_be_old() -> None:
    assert "cannot reach the store" in text_of(page(full_view(), store_connected=False))
    assert "cannot reach the store" not in text_of(page(full_view()))

"""Degraded heartbeat links: the node record says which link is down since when, one
LinkDegraded event when a link goes silent while another still hears the peer, one
LinkRecovered when it is heard again, and `ha status` shows it truthfully."""

from __future__ import annotations

from controller.api.cluster import Cluster
from controller.cli.status_view import link_rows, render, to_json
from controller.store.records import NodeRecord, PeerView
from controller.store.view import ClusterView
from nodeagent.link_report import LinkReport
from nodeagent.liveness_link import MembershipState, PeerState


def state(serial_up: bool, cluster_up: bool = True, serial_age: float = 0.1) -> MembershipState:
    peer = PeerState(
        "up" if serial_up or cluster_up else "dead",
        False,
        "00000000000000aa",
        {"cluster": cluster_up, "serial0": serial_up},
        {"cluster": 0.05 if cluster_up else 5.0, "serial0": serial_age},
    )
    return MembershipState("00000000000000bb", 100.0, 0.1, {"n2": peer}, {"serial0": {"x": 1}})


def test_degraded_then_recovered_events_once_each() -> None:
    now = [1000.0]
    report = LinkReport("n1", clock=lambda: now[0])
    assert report.events(report.peer_views(state(True))) == []
    views = report.peer_views(state(False, serial_age=2.0))
    assert views["n2"].links == {"cluster": "up", "serial0": "down"}
    assert views["n2"].last_heard == {"serial0": 998.0}
    (event,) = report.events(views)
    assert (event.kind, event.name, event.reason, event.type) == (
        "Node",
        "n1",
        "LinkDegraded",
        "Warning",
    )
    assert "serial0 from n1 to n2: silent for 2.0 s while cluster still hears n2" in event.message
    # While it stays silent: the same record (no rewrite) and no new event.
    now[0] += 5
    again = report.peer_views(state(False, serial_age=7.0))
    assert again == views
    assert report.events(again) == []
    (back,) = report.events(report.peer_views(state(True)))
    assert (back.reason, back.type) == ("LinkRecovered", "Normal")


def test_a_peer_silent_on_every_link_is_not_a_degraded_link() -> None:
    report = LinkReport("n1", clock=lambda: 50.0)
    report.events(report.peer_views(state(False, serial_age=1.0)))  # degraded
    views = report.peer_views(state(False, cluster_up=False, serial_age=3.0))
    assert views["n2"].degraded() == []
    assert report.events(views) == []  # no LinkRecovered for a link that is not heard


def cluster() -> Cluster:
    return Cluster.model_validate(
        {
            "apiVersion": "ha.vigil.dev/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": "c"},
            "spec": {
                "nodes": [
                    {"name": "n1", "address": "10.0.0.1"},
                    {"name": "n2", "address": "10.0.0.2"},
                ]
            },
        }
    )


def test_ha_status_shows_the_degraded_link_and_how_long_it_is_silent() -> None:
    record = NodeRecord(
        "n1",
        1,
        "v",
        "aa",
        "",
        True,
        {"n2": PeerView("up", {"cluster": "up", "serial0": "down"}, {"serial0": 990.0})},
        {"serial0": {"dropped_bytes": 12, "replays": 3}},
    )
    assert NodeRecord.from_dict(record.to_dict()) == record
    view = ClusterView(cluster=cluster(), agents={"n1": record})
    assert link_rows(view, 1002.5) == [
        {
            "node": "n1",
            "peer": "n2",
            "link": "serial0",
            "condition": "LinkDegraded",
            "silentFor": 12.5,
            "liveLinks": ["cluster"],
        }
    ]
    text = render("c", view, 1002.5)
    assert "LinkDegraded: link serial0 from n1 to n2: silent for 12.5 s (heard on cluster)" in text
    assert "n2:serial0 DOWN" in text
    data = to_json("c", view, 1002.5)
    assert data["linkCounters"]["n1"]["serial0"]["replays"] == 3
    healthy = ClusterView(
        cluster=cluster(),
        agents={
            "n1": NodeRecord("n1", 1, "v", "aa", "", True, {"n2": PeerView("up", {"a": "up"})})
        },
    )
    assert link_rows(healthy, 0.0) == [] and "Heartbeat links down" not in render("c", healthy, 0)
    closed = ClusterView(
        cluster=cluster(),
        agents={"n1": NodeRecord("n1", 1, "v", "aa", "", True, {}, {"serial0": {"open": 0}})},
    )
    assert "LinkDown: link serial0 on n1: device not open" in render("c", closed, 0)


def test_node_status_condition_written_on_change_and_merged_with_the_leaders_phase() -> None:
    from datetime import UTC, datetime

    from controller.api.node import NodeStatus
    from nodeagent.link_report import merge_node_status

    report = LinkReport("n1", clock=lambda: 1000.0)
    # Healthy from the start: nothing to write.
    assert report.node_status(report.peer_views(state(True))) is None
    mine = report.node_status(report.peer_views(state(False, serial_age=2.0)))
    assert mine is not None
    t1 = datetime(2026, 1, 1, tzinfo=UTC)
    leader = {"phase": "Ready", "conditions": [{"type": "Other", "status": "True"}]}
    data = merge_node_status(leader, mine, t1)
    status = NodeStatus.model_validate(data)  # what `ha get node` decodes
    assert status.phase == "Ready"
    cond = {c.type: c for c in status.conditions}
    assert cond["LinkDegraded"].status == "True" and "serial0 to n2" in cond["LinkDegraded"].message
    assert cond["Other"].status == "True"
    links = {(link.peer, link.name): link for link in status.links}
    assert links[("n2", "serial0")].up is False
    assert links[("n2", "serial0")].last_seen == datetime.fromtimestamp(998.0, UTC)
    assert links[("n2", "cluster")].up is True
    # The same again: nothing to write.
    assert report.node_status(report.peer_views(state(False, serial_age=3.0))) is None
    # Recovered: False, with a new transition time; a later identical status keeps it.
    back = report.node_status(report.peer_views(state(True)))
    assert back is not None and back["condition"]["status"] == "False"
    t2 = datetime(2026, 1, 2, tzinfo=UTC)
    data = merge_node_status(data, back, t2)
    again = merge_node_status(data, back, datetime(2026, 1, 3, tzinfo=UTC))
    final = {c.type: c for c in NodeStatus.model_validate(again).conditions}
    assert final["LinkDegraded"].last_transition_time == t2
    # A write that failed is given again.
    report.forget_status()
    assert report.node_status(report.peer_views(state(True))) == back

"""How this node hears each peer per heartbeat link, for its record and its events.

A peer is heard while any of its links hears it (nodeagent/heartbeat/membership.py), so a
dead serial cable or a blocked network changes nothing in membership: without a word
from here, the first sign of it would be a failover when the last link dies. So the
agent says it: each link that goes silent while another link to the same peer still
hears it is "degraded", posted once as a `LinkDegraded` Warning event on the Node (and a
`LinkRecovered` event when it is heard again), shown by `ha status` from the node
record (`nodes/<node>`, `peers.<peer>.links` and `lastHeard`), and kept as the Node's
`LinkDegraded` condition with its `links` (status/Node/<node>, `ha describe node`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from controller.api.meta import Condition, format_timestamp
from controller.api.node import LinkStatus
from controller.store.objects import Event, make_event
from controller.store.records import PeerView
from nodeagent.liveness_link import MembershipState


class LinkReport:
    def __init__(self, node: str, clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.clock = clock
        self._last_heard: dict[tuple[str, str], float] = {}
        self._degraded: set[tuple[str, str]] = set()
        self._status: dict[str, Any] | None = None  # as last given by node_status()
        self._owns_status = False  # a link degraded once: the Node status says so since

    def peer_views(self, state: MembershipState) -> dict[str, PeerView]:
        """Per peer: its state, each link "up" or "down" and, for a down link, when it was
        last heard (fixed when it went silent: the record stays the same while it is)."""
        now = self.clock()
        views = {}
        for peer, p in state.peers.items():
            heard = {}
            for link, up in p.links.items():
                key = (peer, link)
                if up:
                    self._last_heard.pop(key, None)
                    continue
                if key not in self._last_heard:
                    self._last_heard[key] = round(now - p.ages.get(link, 0.0), 1)
                heard[link] = self._last_heard[key]
            links = {link: "up" if up else "down" for link, up in p.links.items()}
            views[peer] = PeerView(p.state, links, heard)
        return views

    def events(self, views: dict[str, PeerView]) -> list[Event]:
        """The events for what changed since the last call: links newly degraded, and
        degraded links heard again."""
        now = self.clock()
        degraded = {(peer, link) for peer, view in views.items() for link in view.degraded()}
        out = []
        for peer, link in sorted(degraded - self._degraded):
            view = views[peer]
            live = sorted(name for name, st in view.links.items() if st == "up")
            silent = now - view.last_heard.get(link, now)
            verb = "hears" if len(live) == 1 else "hear"
            out.append(
                make_event(
                    "Node",
                    self.node,
                    "LinkDegraded",
                    f"heartbeat link {link} from {self.node} to {peer}: silent for "
                    f"{silent:.1f} s while {', '.join(live)} still {verb} {peer}; "
                    f"{peer} is not lost, but one more failure and it would be: "
                    f"check this link's cable, device or network",
                    type="Warning",
                    component="agent",
                    node=self.node,
                )
            )
        for peer, link in sorted(self._degraded - degraded):
            view_now = views.get(peer)
            if view_now is None or view_now.links.get(link) != "up":
                continue  # the peer went silent on every link: its state says so
            out.append(
                make_event(
                    "Node",
                    self.node,
                    "LinkRecovered",
                    f"heartbeat link {link} from {self.node} to {peer} is heard again",
                    component="agent",
                    node=self.node,
                )
            )
        self._degraded = degraded
        return out

    def node_status(self, views: dict[str, PeerView]) -> dict[str, Any] | None:
        """The Node status fields this agent owns, `links` and the `LinkDegraded`
        condition, if they changed since the last call; None otherwise. Nothing until a
        link first degrades: a healthy start writes nothing."""
        degraded = sorted((peer, link) for peer, v in views.items() for link in v.degraded())
        if not (degraded or self._owns_status):
            return None
        self._owns_status = True
        links = [
            LinkStatus(
                name=link,
                peer=peer,
                up=state == "up",
                last_seen=(
                    datetime.fromtimestamp(view.last_heard[link], UTC)
                    if link in view.last_heard
                    else None
                ),
            ).to_dict()
            for peer, view in sorted(views.items())
            for link, state in sorted(view.links.items())
        ]
        if degraded:
            names = ", ".join(f"{link} to {peer}" for peer, link in degraded)
            condition = Condition(
                type="LinkDegraded",
                status="True",
                reason="LinkSilent",
                message=f"heartbeat links silent while others still hear the peer: {names}",
            )
        else:
            condition = Condition(
                type="LinkDegraded",
                status="False",
                reason="LinksHeard",
                message="every heartbeat link that hears a peer is heard",
            )
        status = {"links": links, "condition": condition.to_dict()}
        if status == self._status:
            return None
        self._status = status
        return status

    def forget_status(self) -> None:
        """The last node_status() was not written: give it again next time."""
        self._status = None


def merge_node_status(
    current: dict[str, Any], mine: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """`current` (status/Node/<node>, whose `phase` the leader writes) with this agent's
    links and LinkDegraded condition; the transition time kept while its status stays."""
    data = dict(current)
    data["links"] = mine["links"]
    condition = dict(mine["condition"])
    others = [c for c in data.get("conditions") or [] if c.get("type") != condition["type"]]
    old = next(
        (c for c in data.get("conditions") or [] if c.get("type") == condition["type"]), None
    )
    if (
        old is not None
        and old.get("status") == condition["status"]
        and old.get("lastTransitionTime")
    ):
        condition["lastTransitionTime"] = old["lastTransitionTime"]
    else:
        condition["lastTransitionTime"] = format_timestamp(now)
    data["conditions"] = [*others, condition]
    return data

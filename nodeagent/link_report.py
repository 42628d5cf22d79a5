"""How this node hears each peer per heartbeat link, for its record and its events.

A peer is heard while any of its links hears it (nodeagent/heartbeat/membership.py), so a
dead serial cable or a blocked network changes nothing in membership: without a word
from here, the first sign of it would be a failover when the last link dies. So the
agent says it: each link that goes silent while another link to the same peer still
hears it is "degraded", posted once as a `LinkDegraded` Warning event on the Node (and a
`LinkRecovered` event when it is heard again), and shown by `ha status` from the node
record (`nodes/<node>`, `peers.<peer>.links` and `lastHeard`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from controller.store.objects import Event, make_event
from controller.store.records import PeerView
from nodeagent.liveness_link import MembershipState


class LinkReport:
    def __init__(self, node: str, clock: Callable[[], float] = time.time) -> None:
        self.node = node
        self.clock = clock
        self._last_heard: dict[tuple[str, str], float] = {}
        self._degraded: set[tuple[str, str]] = set()

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
                    component=f"agent/{self.node}",
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
                    component=f"agent/{self.node}",
                )
            )
        self._degraded = degraded
        return out

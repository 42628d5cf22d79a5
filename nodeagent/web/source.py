"""The status page's routes: `/` and `/status` in HTML, `/status.json` as `ha status -o
json` prints it, built at request time from the agent's informer (its watched copy of the
store), as the metrics collector reads it: nothing is kept or updated while nobody looks.

The events are not in the informer's copy (it leaves them out so that the daemons do not
wake for them), so a page reads them from the store; at most once per REFRESH window, so
that any number of open browsers costs etcd one listing per window.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from controller.status.document import status_document
from controller.status.rows import status_rows
from controller.store import keys
from controller.store.base import Store
from controller.store.informer import Informer
from nodeagent.web.page import REFRESH_SECONDS, Page, render_page

PATHS = ("/", "/status", "/status.json")
EVENTS_TIMEOUT = 2.0  # a page waits no longer for the store; it says the events are missing

Answer = tuple[int, dict[str, str], bytes]

# No script, style only inline, no framing by other sites, nothing cached: the page shows
# names others chose, and a stale copy of the cluster's state misleads.
_HTML_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
_JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


class StatusPages:
    def __init__(
        self,
        cluster: str,
        node: str,
        informer: Callable[[], Informer | None],
        store: Callable[[], Store | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.node = node
        self._informer = informer  # read per request: the agent creates it after the server
        self._store = store
        self._clock = clock
        self._events: tuple[float, Sequence[Mapping[str, Any]] | None, str] | None = None

    async def answer(self, path: str) -> Answer:
        informer = self._informer()
        if informer is None:
            body = b"the agent has not read the store yet; try again in a moment\n"
            return 503, {"Retry-After": "2"}, body
        now = self._clock()
        view = informer.view()
        document = status_document(self.cluster, view, now)
        if path == "/status.json":
            # Byte for byte what `ha status -o json` prints (controller/cli/ops_cmd.py).
            return 200, dict(_JSON_HEADERS), (json.dumps(document, indent=2) + "\n").encode()
        events, error = await self._recent_events(now)
        page = Page(
            node=self.node,
            rows=status_rows(self.cluster, view, now),
            document=document,
            now=now,
            events=events,
            events_error=error,
            store_connected=informer.connected,
        )
        return 200, dict(_HTML_HEADERS), render_page(page).encode()

    async def _recent_events(self, now: float) -> tuple[Sequence[Mapping[str, Any]] | None, str]:
        # A wall clock set back does not keep an old listing: only 0 <= age counts.
        if self._events is not None and 0 <= now - self._events[0] < REFRESH_SECONDS:
            return self._events[1], self._events[2]
        store = self._store()
        events: Sequence[Mapping[str, Any]] | None = None
        error = ""
        if store is None:
            error = "the agent has no store client yet"
        else:
            try:
                async with asyncio.timeout(EVENTS_TIMEOUT):
                    kvs, _ = await store.list(keys.EVENTS)
                events = [kv.value for kv in kvs]
            except TimeoutError:
                error = f"the store did not answer within {EVENTS_TIMEOUT:g} s"
            except Exception as exc:  # any store failure: the rest of the page still shows
                error = f"{type(exc).__name__}: {exc}"
        self._events = (now, events, error)
        return events, error

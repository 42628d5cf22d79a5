"""The status page's routes on the metrics listener: `/status.json` is `ha status -o json`
byte for byte, `/` and `/status` the page, behind the same auth; the node config's
`metrics.status_page` turns them off; a store that fails costs the events only."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from prometheus_client import CollectorRegistry

from controller.api.errors import InputError
from controller.api.meta import Object
from controller.bootstrap.node_config import MetricsSettings, load_node_config
from controller.cli.status_view import to_json
from controller.store import keys
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from controller.store.objects import ObjectStore, event_key, make_event
from controller.store.records import PlacementRecord
from nodeagent.metrics.collector import Sources
from nodeagent.metrics.endpoint import serve
from nodeagent.metrics.server import MetricsServer
from nodeagent.metrics.webconfig import WebConfig
from nodeagent.web.page import REFRESH_SECONDS
from nodeagent.web.source import PATHS, StatusPages
from tests.unit.controller.bootstrap.test_node_config import _init
from tests.unit.controller.cli.test_status_view import pg_view
from tests.unit.nodeagent.metrics.helpers import link

NOW = 1_800_000_000.0


class FailingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__("c")
        self.lists = 0

    async def list(self, prefix: str) -> Any:
        self.lists += 1
        raise OSError("etcd is gone")


async def loaded(store: MemoryStore) -> Informer:
    """An informer holding the pg example with a placement, and one event in the store."""
    objects = ObjectStore(store)
    view = pg_view()
    specs: list[Object] = [view.cluster, *view.groups.values(), *view.fences.values()]  # type: ignore[list-item]
    for obj in specs:
        assert await objects.create(obj)
    await store.put(keys.placement_key("pg"), PlacementRecord("pg", "host-m", 3, "best").to_dict())
    made = make_event("ResourceGroup", "pg", "Placed", "placed on host-m: best")
    await store.put(event_key("ResourceGroup", "pg", made.time), made.to_dict())
    informer = Informer(store)
    informer.load(*await store.list(""))
    return informer


async def test_status_json_is_what_ha_status_prints() -> None:
    informer = await loaded(MemoryStore("c"))
    pages = StatusPages("c", "host-s", lambda: informer, lambda: None, clock=lambda: NOW)
    status, headers, body = await pages.answer("/status.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    expected = json.dumps(to_json("c", informer.view(), NOW), indent=2) + "\n"
    assert body.decode() == expected
    assert json.loads(body)["groups"][0]["placed"] == "host-m"


async def test_the_page_on_both_paths_with_the_events() -> None:
    store = MemoryStore("c")
    informer = await loaded(store)
    pages = StatusPages("c", "host-s", lambda: informer, lambda: store, clock=lambda: NOW)
    for path in ("/", "/status"):
        status, headers, body = await pages.answer(path)
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src" not in headers["Content-Security-Policy"]
        page = body.decode()
        assert "<td>pg</td><td>host-m</td>" in page
        assert "placed on host-m: best" in page


async def test_before_the_informer_exists_the_page_says_to_wait() -> None:
    pages = StatusPages("c", "host-s", lambda: None, lambda: None)
    status, headers, _ = await pages.answer("/status.json")
    assert status == 503 and headers["Retry-After"]


async def test_a_failing_store_costs_the_events_once_per_refresh() -> None:
    informer = await loaded(MemoryStore("c"))
    store = FailingStore()
    clock = [NOW]
    pages = StatusPages("c", "host-s", lambda: informer, lambda: store, clock=lambda: clock[0])
    for _ in range(3):
        status, _, body = await pages.answer("/")
        assert status == 200 and "events unavailable: OSError: etcd is gone" in body.decode()
        assert "<td>pg</td>" in body.decode()
    assert store.lists == 1
    clock[0] += REFRESH_SECONDS
    await pages.answer("/")
    assert store.lists == 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


@pytest.mark.parametrize("on", [True, False])
async def test_metrics_status_page_acts(on: bool) -> None:
    """On, the listener serves the page beside /metrics; off, only /metrics and the
    pointer to it."""
    informer = await loaded(MemoryStore("c"))
    lk, _end = link()
    sources = Sources("host-s", "0.1", lk, informer=informer, cluster="c")
    port = free_port()
    settings = MetricsSettings(listen=f"127.0.0.1:{port}", status_page=on)
    server = await serve(settings, sources, None)
    assert server is not None
    try:
        assert (await get(port, "/metrics"))[0] == 200
        status, headers, body = await get(port, "/status.json")
        assert status == (200 if on else 404)
        if on:
            assert json.loads(body)["cluster"] == "c"
        for path in ("/", "/status"):
            status, headers, body = await get(port, path)
            if on:
                assert status == 200 and headers["content-type"].startswith("text/html")
                assert "<h2>Groups</h2>" in body
            elif path == "/":
                assert status == 200 and "metrics at /metrics" in body
            else:
                assert status == 404
        assert (await get(port, "/status.json/x"))[0] == 404
        assert (await get(port, "/", "POST"))[0] == 405
        assert (await get(port, "/status.json", "HEAD"))[0] == 405
    finally:
        await server.close()


def test_the_node_config_field(tmp_path: Path) -> None:
    path = _init(tmp_path)
    assert load_node_config(path).metrics.status_page  # on by default
    data = yaml.safe_load(path.read_text())
    data["metrics"] = {"status_page": False}
    path.write_text(yaml.safe_dump(data))
    assert not load_node_config(path).metrics.status_page
    data["metrics"] = {"status_page": "sometimes"}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="metrics.status_page"):
        load_node_config(path)


async def test_the_page_asks_for_the_metrics_users() -> None:
    """Behind the web config's basic auth as /metrics is: the page names every node and
    group, and the events' messages."""
    informer = await loaded(MemoryStore("c"))
    pages = StatusPages("c", "host-s", lambda: informer, lambda: None)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4))
    server = MetricsServer(
        "127.0.0.1", 0, CollectorRegistry(), WebConfig(None, {"u": hashed}), pages
    )
    token = base64.b64encode(b"u:s3cret").decode()
    for path in PATHS:
        request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        assert (await server._answer(request))[0] == 401
        authorized = f"GET {path} HTTP/1.1\r\nAuthorization: Basic {token}\r\n\r\n".encode()
        assert (await server._answer(authorized))[0] == 200

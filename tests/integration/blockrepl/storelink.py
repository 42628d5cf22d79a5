"""Give replicas in network namespaces a path to the test's etcd on the root loopback.

Each namespace gets a veth pair to the root namespace on a /30 of its own, and a TCP relay
thread in the test process listens on the root-side address and forwards to etcd on
127.0.0.1. The relay can be paused (bytes are held, nothing is dropped), which lets a
test hold a store request in flight for as long as it needs. No traffic leaves the
machine: the only addresses used are the veths' and loopback.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from .replicas import sh


class Relay:
    def __init__(self, listen_ip: str, target: tuple[str, int]) -> None:
        self.target = target
        self.open = threading.Event()
        self.open.set()
        self._stop = threading.Event()
        self._lsock = socket.create_server((listen_ip, 0))
        self._lsock.settimeout(0.2)
        self.port = int(self._lsock.getsockname()[1])
        self._socks: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.open.wait()  # paused: hold the bytes
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def pause(self) -> None:
        self.open.clear()

    def resume(self) -> None:
        self.open.set()

    def close(self) -> None:
        self._stop.set()
        self.open.set()
        self._lsock.close()
        for s in self._socks:
            s.close()
        self._thread.join(timeout=2)


@dataclass
class StoreLinks:
    endpoints: list[str]  # per namespace: the etcd URL a replica inside it uses
    relays: list[Relay] = field(default_factory=list)


def _free_subnet() -> tuple[str, str]:
    routes = subprocess.run(["ip", "-4", "-o", "route"], capture_output=True, text=True).stdout
    for _ in range(100):
        prefix = (
            f"10.{random.randint(100, 199)}.{random.randint(0, 255)}.{4 * random.randint(0, 63)}"
        )
        a, b, c, d = (int(x) for x in prefix.split("."))
        if f"{a}.{b}.{c}." not in routes:
            return f"{a}.{b}.{c}.{d + 1}", f"{a}.{b}.{c}.{d + 2}"
    raise RuntimeError("no free 10.x.y.z/30 for the store veth")


@contextmanager
def store_links(namespaces: tuple[str, ...], etcd_port: int) -> Iterator[StoreLinks]:
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    roots: list[str] = []
    links = StoreLinks([])
    try:
        for i, ns in enumerate(namespaces):
            root_if, ns_if = f"fr{i}{tag}", f"fn{i}{tag}"
            root_ip, ns_ip = _free_subnet()
            sh("ip", "link", "add", root_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
            roots.append(root_if)
            sh("ip", "addr", "add", f"{root_ip}/30", "dev", root_if)
            sh("ip", "link", "set", root_if, "up")
            sh("ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
            sh("ip", "-n", ns, "link", "set", ns_if, "up")
            relay = Relay(root_ip, ("127.0.0.1", etcd_port))
            links.relays.append(relay)
            links.endpoints.append(f"http://{root_ip}:{relay.port}")
        yield links
    finally:
        for relay in links.relays:
            relay.close()
        for root_if in roots:
            sh("ip", "link", "del", root_if, check=False)

"""`blockrepl serve` with a peer: replica node + NBD front end (Primary only) + control socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

from blockrepl.errors import BlockReplError
from blockrepl.generation import MdFlag
from blockrepl.metadata import MetadataStore
from blockrepl.metrics import render as render_metrics
from blockrepl.metrics_http import MetricsServer
from blockrepl.nbd.server import HANDSHAKE_TIMEOUT, Export, NbdServer
from blockrepl.outdate import PeerOutdater
from blockrepl.replicated import ReplicatedBackend
from blockrepl.replication.control import ControlServer
from blockrepl.replication.node import ReplConfig, ReplicaNode


class ConfigError(BlockReplError):
    pass


def read_secret(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            secret = f.read().strip()
    except OSError as exc:
        raise ConfigError(f"--secret-file {path}: {exc.strerror}") from None
    if len(secret) < 16:
        raise ConfigError(
            f"--secret-file {path} holds {len(secret)} bytes; use at least 16 random bytes "
            "(e.g. `head -c 32 /dev/urandom | base64 > FILE`)"
        )
    return secret


async def serve_replicated(
    md: MetadataStore,
    data_path: str,
    cfg: ReplConfig,
    role: str,
    force: bool,
    export_name: str,
    unix: list[str],
    listens: list[tuple[str, int]],
    control: str,
    on_ready: Callable[[], None],
    metrics_listen: tuple[str, int] | None = None,
    outdater: PeerOutdater | None = None,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
) -> int:
    md.attach()
    if role == "secondary" and md.sb.has(MdFlag.PRIMARY_IND):
        md.demote()
    backend = ReplicatedBackend(md, data_path, on_io_error=cfg.on_io_error)
    node = ReplicaNode(md, backend, cfg, outdater)
    if role == "primary":
        await node.promote(force=force)
    nbd = NbdServer(
        [Export(export_name, backend, refuse=lambda: _refuse(node))],
        handshake_timeout=handshake_timeout,
    )
    node.in_use = lambda: nbd.attached
    ctl = ControlServer(node, control)
    metrics = MetricsServer(lambda: render_metrics(node.status()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.start()
        await ctl.start()
        print(f"control socket on unix:{control}", flush=True)
        if metrics_listen is not None:
            mport = await metrics.start(*metrics_listen)
            print(f"metrics on http://{metrics_listen[0]}:{mport}/metrics", flush=True)
        if node.bound_port:
            assert cfg.listen is not None
            print(f"replication listening on {cfg.listen[0]}:{node.bound_port}", flush=True)
        for sock in unix:
            await nbd.listen_unix(sock)
            print(f"serving {export_name!r} ({backend.size} bytes) on unix:{sock}", flush=True)
        for host, port in listens:
            bound = await nbd.listen_tcp(host, port)
            print(f"serving {export_name!r} ({backend.size} bytes) on {host}:{bound}", flush=True)
        on_ready()
        await stop.wait()
    finally:
        await nbd.stop()
        await metrics.stop()
        await ctl.stop()
        await node.stop()
        if outdater is not None:
            await outdater.close()
        await backend.close(clean=True)
        for sock in unix:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sock)
    return 0


def _refuse(node: ReplicaNode) -> str | None:
    if not node.is_primary:
        return "this replica is Secondary; promote it (blockrepl promote) to serve"
    if node.demoting:
        return "this replica is being demoted to Secondary"
    return None

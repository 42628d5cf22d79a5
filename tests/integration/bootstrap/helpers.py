"""Loopback nodes for bootstrap tests, and `ha cluster ...` run in-process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import random
import socket
from dataclasses import dataclass
from pathlib import Path

from controller.api.errors import VigilError
from controller.cli import cluster_cmd, events_cmd
from controller.cli.main import _global_options, _report
from controller.store.client_config import resolve
from controller.store.errors import StoreError


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def loopback_base() -> int:
    """First octet of three consecutive 127.0.0.x addresses, random so runs do not collide."""
    return random.randrange(20, 250)


@dataclass
class NodeDirs:
    name: str
    address: str
    root: Path
    client_port: int
    peer_port: int

    @classmethod
    def make(cls, root: Path, name: str, address: str) -> NodeDirs:
        return cls(name, address, root / name, free_port(address), free_port(address))

    @property
    def node_config(self) -> Path:
        return self.root / "node.yaml"

    @property
    def client_config(self) -> Path:
        return self.root / "client.yaml"

    @property
    def pki_dir(self) -> Path:
        return self.root / "pki"

    @property
    def data_dir(self) -> Path:
        return self.root / "etcd"

    @property
    def log_file(self) -> Path:
        return self.root / "etcd.log"

    def file_args(self) -> list[str]:
        return [
            "--node", self.name,
            "--node-config", str(self.node_config),
            "--client-config", str(self.client_config),
            "--pki-dir", str(self.pki_dir),
            "--data-dir", str(self.data_dir),
            "--client-port", str(self.client_port),
            "--peer-port", str(self.peer_port),
        ]  # fmt: skip


def cluster_manifest(path: Path, name: str, nodes: list[NodeDirs], extra: str = "") -> Path:
    lines = [
        "apiVersion: ha.vigil.dev/v1alpha1",
        "kind: Cluster",
        f"metadata: {{name: {name}}}",
        "spec:",
        "  nodes:",
    ]
    for n in nodes:
        lines.append(f"    - {{name: {n.name}, address: {n.address}}}")
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str


def _parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(prog="ha", parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    cluster_cmd.register(sub, common)
    events_cmd.register(sub, common)  # what the membership commands recorded
    return parser


def _dispatch(argv: list[str]) -> int:
    # The same dispatch as controller.cli.main.main, with only the cluster and events commands.
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "run", None) is None:
            code: int = args.local(args)
            return code
        config = resolve(
            config_path=getattr(args, "config", None),
            endpoints=getattr(args, "endpoints", None),
            cluster=getattr(args, "cluster", None),
            timeout=getattr(args, "timeout", None),
            environ={},
        )
        result: int = asyncio.run(args.run(args, config))
        return result
    except (VigilError, StoreError) as exc:
        return _report(exc)


def ha_sync(argv: list[str]) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = _dispatch(argv)
    return Result(code, out.getvalue(), err.getvalue())


async def ha(*argv: str) -> Result:
    """`ha ARGV` in a thread (its commands run their own event loop)."""
    return await asyncio.to_thread(ha_sync, list(argv))

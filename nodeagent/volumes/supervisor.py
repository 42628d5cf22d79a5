"""Runs this node's replica of every ReplicatedVolume that names it, and reports it.

A replica runs whatever the groups do: Secondary by default, kept connected to its peer so
that its data stays UpToDate; the `volume` actuator promotes it where a group runs. The
process lives in its own session, so an agent restart leaves it running and the next agent
adopts it (pid file plus command line), as DRBD outlives Pacemaker. It is started again with
a back-off when it exits, and restarted when the spec changes, unless it is Primary then
(restarting it would pull the disk from under a mounted filesystem): that waits for the
demote. Each turn the replica's own status goes into the volume's status entry for this
node, by compare-and-swap, when it changed or every REFRESH seconds (`observedAt` tells
readers the node still reports), with the events of what changed (transitions.py) in the
same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controller.api.volume import ReplicatedVolume
from controller.store import keys
from controller.store.base import Put, Store
from controller.store.errors import ConflictError, StoreError
from controller.store.informer import Informer
from controller.store.objects import ObjectStore, make_event
from nodeagent.actuators.procinfo import read_proc_stat
from nodeagent.actuators.volume_paths import control_socket, volume_dir
from nodeagent.volumes.command import (
    ReplicaFiles,
    derived_secret_file,
    pid_file,
    serve_command,
)
from nodeagent.volumes.control import ReplicaUnreachable, request
from nodeagent.volumes.status import entry, merge, replica_status, same
from nodeagent.volumes.transitions import Change, resync_ended, status_changes

log = logging.getLogger(__name__)

TICK = 1.0
REFRESH = 10.0
BACKOFF_MAX = 30.0
STOP_GRACE = 10.0


def derive_secret(cluster_key: bytes, volume: str) -> str:
    """The volume's link secret when its spec names none: both replicas hold the cluster's
    heartbeat key, so both derive the same secret, and no volume shares another's."""
    return hmac.new(cluster_key, f"blockrepl volume {volume}".encode(), hashlib.sha256).hexdigest()


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _alive(pid: int) -> bool:
    stat = read_proc_stat(pid)
    return stat is not None and stat.alive


@dataclass
class Replica:
    """One replica this node runs: the command it runs with and how it fares."""

    name: str
    argv: list[str]
    pid: int | None = None
    proc: asyncio.subprocess.Process | None = None
    failures: int = 0
    not_before: float = 0.0
    error: str | None = None
    written_at: float = 0.0
    role: str = "Unknown"

    @property
    def running(self) -> bool:
        if self.proc is not None:
            return self.proc.returncode is None
        return self.pid is not None and _alive(self.pid)


class VolumeSupervisor:
    def __init__(
        self,
        node: str,
        store: Store,
        informer: Informer,
        run_dir: Path,
        files: ReplicaFiles,
        cluster_key_file: str,
    ) -> None:
        self.node = node
        self.store = store
        self.informer = informer
        self.run_dir = run_dir
        self.files = files
        self.cluster_key_file = cluster_key_file
        self.replicas: dict[str, Replica] = {}
        self.last_status: dict[str, dict[str, Any] | None] = {}
        """Each volume's replica status as it last answered (None: it did not), read by
        the agent's metrics at scrape time rather than asking the replica again."""
        self._objects = ObjectStore(store)
        self._resyncs: dict[str, tuple[object, ...] | None] = {}  # last `last_sync` seen
        self._pending: dict[str, list[Change]] = {}  # resync ends not yet recorded

    async def run(self) -> None:
        changed = self.informer.subscribe()
        while True:
            changed.clear()
            await self.turn()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK):
                    await changed.wait()

    def wanted(self) -> dict[str, ReplicatedVolume]:
        """The volumes with a replica on this node, by name."""
        return {
            name: obj
            for name, obj in self.informer.objects("ReplicatedVolume").items()
            if isinstance(obj, ReplicatedVolume)
            and any(r.node == self.node for r in obj.spec.replicas)
        }

    async def turn(self) -> None:
        wanted = self.wanted()
        for name in [n for n in self.replicas if n not in wanted]:
            await self._retire(name)
        for name in [n for n in self.last_status if n not in wanted]:
            del self.last_status[name]
            self._resyncs.pop(name, None)
            self._pending.pop(name, None)
        for name, volume in wanted.items():
            try:
                await self._keep(volume)
            except Exception as exc:  # one volume's trouble must not stop the others'
                log.exception("volume %s: supervising its replica failed", name)
                self.replicas.setdefault(name, Replica(name, [])).error = str(exc)
            await self._report(volume)

    # -- the process --------------------------------------------------------------------

    async def _keep(self, volume: ReplicatedVolume) -> None:
        name = volume.metadata.name
        self._prepare(volume)
        argv = serve_command(volume, self.node, self.run_dir, self.files)
        replica = self.replicas.get(name)
        if replica is None:
            replica = self.replicas[name] = Replica(name, argv)
            self._adopt(replica)
        if replica.running and replica.argv != argv:
            if replica.role == "Primary":
                replica.error = "spec changed: the replica restarts with it once demoted"
                return
            log.info("volume %s: spec changed, restarting the replica", name)
            await self._terminate(replica)
        replica.argv = argv
        if replica.running:
            replica.error = None
            return
        if replica.proc is not None or replica.pid is not None:
            replica.error = self._exit_reason(replica)
            replica.failures += 1
            delay = min(BACKOFF_MAX, 2.0 ** (replica.failures - 1))
            replica.not_before = time.monotonic() + delay
            replica.proc, replica.pid = None, None
            log.warning("volume %s: replica exited (%s); again in %gs", name, replica.error, delay)
        if time.monotonic() < replica.not_before:
            return
        await self._start(replica)

    def _prepare(self, volume: ReplicatedVolume) -> None:
        """The replica's directory, and its link secret when the spec names no file."""
        name = volume.metadata.name
        volume_dir(self.run_dir, name).mkdir(parents=True, exist_ok=True)
        if volume.spec.secret_file is None:
            key = Path(self.cluster_key_file).read_bytes().strip()
            secret = derive_secret(key, name)
            path = derived_secret_file(self.run_dir, name)
            if not self._same_file(path, secret):
                _write_private(path, secret)

    @staticmethod
    def _same_file(path: Path, text: str) -> bool:
        try:
            return path.read_text() == text
        except OSError:
            return False

    def _adopt(self, replica: Replica) -> None:
        """A replica left running by the previous agent (same volume's control socket)."""
        try:
            pid = int(pid_file(self.run_dir, replica.name).read_text().strip())
        except (OSError, ValueError):
            return
        argv = _cmdline(pid)
        control = str(control_socket(self.run_dir, replica.name))
        if argv and "serve" in argv and control in argv and _alive(pid):
            replica.pid = pid
            replica.argv = argv
            log.info("volume %s: adopted the running replica (pid %d)", replica.name, pid)

    async def _start(self, replica: Replica) -> None:
        directory = volume_dir(self.run_dir, replica.name)
        log_path = directory / "serve.log"
        with log_path.open("ab") as out:
            replica.proc = await asyncio.create_subprocess_exec(
                *replica.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        replica.pid = replica.proc.pid
        log.info("volume %s: replica started (pid %d)", replica.name, replica.pid)

    def _exit_reason(self, replica: Replica) -> str:
        code = replica.proc.returncode if replica.proc is not None else None
        tail = ""
        with contextlib.suppress(OSError):
            lines = (volume_dir(self.run_dir, replica.name) / "serve.log").read_text().splitlines()
            tail = next((line for line in reversed(lines) if line.strip()), "")
        what = f"exit status {code}" if code is not None else "it is gone"
        ended = f"blockrepl serve ended ({what})"
        return f"{ended}: {tail}" if tail else ended

    async def _terminate(self, replica: Replica) -> None:
        pid = replica.pid
        if pid is None or not replica.running:
            replica.proc, replica.pid = None, None
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while replica.running and time.monotonic() < deadline:
            if replica.proc is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(replica.proc.wait(), 0.1)
            else:
                await asyncio.sleep(0.1)
        if replica.running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if replica.proc is not None:
                await replica.proc.wait()
        replica.proc, replica.pid = None, None
        replica.failures = 0

    async def _retire(self, name: str) -> None:
        """The volume is gone, or no longer has a replica here: stop it unless Primary."""
        replica = self.replicas[name]
        if replica.role == "Primary" and replica.running:
            return  # a group still uses it here; the demote comes first
        await self._terminate(replica)
        del self.replicas[name]

    # -- reporting ------------------------------------------------------------------------

    def _note_resync_end(self, name: str, raw: dict[str, Any] | None) -> None:
        """A resync's end, once: blockrepl's `last_sync` is replaced at each end (counters
        are added to it afterwards, so it is told apart by what does not change). The
        first look only takes note: an agent that starts does not retell an old resync."""
        if raw is None:
            return
        last = raw.get("last_sync")
        if not isinstance(last, dict):
            self._resyncs.setdefault(name, None)
            return
        seen = tuple(last.get(k) for k in ("kind", "total_bytes", "seconds", "started"))
        if name in self._resyncs and seen != self._resyncs[name]:
            self._pending.setdefault(name, []).append(resync_ended(name, last))
        self._resyncs[name] = seen

    async def _report(self, volume: ReplicatedVolume) -> None:
        name = volume.metadata.name
        replica = self.replicas.get(name)
        raw: dict[str, Any] | None = None
        error = replica.error if replica else None
        try:
            answer = await request(control_socket(self.run_dir, name), "status")
            if answer.get("ok"):
                raw = answer["status"]
                if replica is not None:
                    replica.role = str(raw.get("role"))
                    replica.failures = 0
        except ReplicaUnreachable as exc:
            error = error or f"replica not answering: {exc}"
        self.last_status[name] = raw
        self._note_resync_end(name, raw)
        mine = replica_status(self.node, raw, error, datetime.now(UTC))
        key = keys.status_key("ReplicatedVolume", name)
        stored = self.informer.get(key)
        current = stored.value if stored is not None else None
        before = entry(current, self.node)
        pending = self._pending.get(name, [])
        fresh = replica is not None and time.monotonic() - replica.written_at < REFRESH
        if same(mine, before) and fresh and not pending:
            return
        order = [r.node for r in volume.spec.replicas]
        peer = next((n for n in order if n != self.node), None)
        changes = [*status_changes(name, peer, before, mine), *pending]
        events = [
            make_event("ReplicatedVolume", name, c.reason, c.message, type=c.type,
                       component="agent", node=self.node)
            for c in changes
        ]  # fmt: skip
        revision = stored.mod_revision if stored is not None else 0
        put = Put(key, merge(current, mine, order), expect_revision=revision)
        try:
            await self._objects.commit_with_events([put], events)
            pending.clear()
        except ConflictError:
            return  # the peer wrote its entry meanwhile: the next turn merges with it
        except StoreError as exc:
            log.warning("volume %s: cannot report the replica's status: %s", name, exc)
            return
        if replica is not None:
            replica.written_at = time.monotonic()


def store_config_text(endpoints: list[str], cluster: str, ca: str, cert: str, key: str) -> str:
    """The client config the replica reads to keep outdate records in the store."""
    return json.dumps(
        {"endpoints": endpoints, "cluster": cluster, "tls": {"ca": ca, "cert": cert, "key": key}}
    )


def write_store_config(path: Path, text: str) -> None:
    _write_private(path, text)

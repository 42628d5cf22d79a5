"""The node's embedded etcd member: the system ``etcd`` binary as a supervised child.

``EtcdMember`` starts etcd with TLS on peer and client traffic (client certificates
required), checks health over TLS with the node's client certificate, and restarts
etcd with exponential backoff when it dies. A start that fails before etcd was ever
healthy (bad flags, port in use, data dir belonging to another cluster) is not
retried: it is a configuration error, reported with etcd's log tail.

Timing defaults (heartbeat 50 ms, election 250 ms) give ~0.3 s leader failover on a LAN
(measured: docs in shared reference, libs.md section 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from controller.bootstrap.etcd_config import (
    EtcdMemberConfig,
    EtcdStartError,
    EtcdTLS,
    check_config,
    etcd_args,
    host_port,
    port_in_use,
)

log = logging.getLogger(__name__)

# etcd 3.4 prints one of these before exiting once it learns it was removed from the cluster.
_REMOVED_MARKERS = (
    "permanently removed from the cluster",
    "the member has been removed",
    "data-dir used by this member must be removed",
)


@dataclass
class Backoff:
    """Restart delays: doubling per crash, reset once etcd ran stably for a while."""

    initial: float = 0.5
    maximum: float = 30.0
    stable_after: float = 60.0
    _next: float = field(default=0.0, init=False)

    def delay(self, ran_for: float) -> float:
        if ran_for >= self.stable_after or self._next == 0.0:
            self._next = self.initial
        else:
            self._next = min(self._next * 2, self.maximum)
        return self._next


# If the agent dies, its etcd must not linger holding the ports and data dir: etcd runs with
# PR_SET_PDEATHSIG = SIGTERM. util-linux's setpriv sets it and execs etcd; a preexec_fn would
# do the same but makes Python fork() instead of vfork(), and gRPC's fork handlers (the
# agent's store client is live by then) can abort the child before it execs (grpc#43055).
SETPRIV = shutil.which("setpriv")


def with_parent_death_signal(argv: list[str]) -> list[str]:
    if SETPRIV is None:
        return argv
    return [SETPRIV, "--pdeathsig", "TERM", "--", *argv]


async def check_health(
    url: str, tls: EtcdTLS, within: float = 1.0, *, server_name: str | None = None
) -> bool:
    """GET /health over TLS with the client certificate: True iff etcd has a leader."""
    host, port = host_port(url)
    ctx = ssl.create_default_context(cafile=tls.ca_cert)
    ctx.load_cert_chain(tls.client_cert, tls.client_key)
    writer = None
    try:
        async with asyncio.timeout(within):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=ctx, server_hostname=server_name or host
            )
            writer.write(
                f"GET /health HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            body = await reader.read(65536)
            return b" 200 " in body.split(b"\r\n", 1)[0] and b'"health":"true"' in body
    except (OSError, TimeoutError, ssl.SSLError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


State = Literal["stopped", "starting", "running", "backoff", "failed", "removed"]


class EtcdMember:
    def __init__(
        self,
        config: EtcdMemberConfig,
        *,
        backoff: Backoff | None = None,
        on_exit: Callable[[int, str], object] | None = None,
    ) -> None:
        self.config = config
        self.backoff = backoff or Backoff()
        self.on_exit = on_exit  # called with (exit status, new state) when etcd exits on its own
        self.state: State = "stopped"
        self.restarts = 0
        self.last_exit: int | None = None
        self.last_exit_at: float | None = None
        self.failure: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._started_at = 0.0
        self._log_offset = 0
        self._ever_healthy = False
        self._stopping = False
        self._force_new = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def client_url(self) -> str:
        return self.config.client_urls[0]

    def status(self) -> dict[str, object]:
        return {
            "state": self.state,
            "pid": self.pid,
            "restarts": self.restarts,
            "lastExit": self.last_exit,
            "failure": self.failure,
        }

    def log_tail(self, lines: int = 25, *, since: int = 0) -> str:
        """The last lines of etcd's log, optionally only what was written after byte since."""
        try:
            with self.config.log_path.open("rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return "(no etcd log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- start ---------------------------------------------------------------------------

    def _binary(self) -> str:
        found = shutil.which(self.config.binary)
        if found is None:
            raise EtcdStartError(
                f"etcd binary {self.config.binary!r} not found: install it with "
                "`apt-get install etcd-server`"
            )
        return found

    def _preflight(self) -> str:
        cfg = self.config
        check_config(cfg)
        binary = self._binary()
        for path, what in ((cfg.data_dir, "data dir"), (cfg.log_path.parent, "log dir")):
            try:
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as e:
                raise EtcdStartError(f"cannot create etcd {what} {path}: {e.strerror}") from None
            if not os.access(path, os.W_OK | os.X_OK):
                raise EtcdStartError(
                    f"etcd {what} {path} is not writable by uid {os.getuid()}; fix its owner or "
                    "mode, or choose another data dir"
                )
        # etcd warns and tightens a looser mode; do it ourselves so it is never world-readable.
        os.chmod(cfg.data_dir, 0o700)
        for url in (*cfg.client_urls, cfg.peer_url):
            host, port = host_port(url)
            if port_in_use(host, port):
                raise EtcdStartError(
                    f"cannot start etcd member {cfg.name}: {host}:{port} ({url}) is already in "
                    "use, by another etcd or a stale member of this node (stop it first). "
                    f"etcd log tail ({cfg.log_path}):\n{self.log_tail(10)}"
                )
        for f in (cfg.tls.ca_cert, cfg.tls.server_cert, cfg.tls.server_key):
            if not os.access(f, os.R_OK):
                raise EtcdStartError(
                    f"etcd TLS file {f} is missing or unreadable; run `ha cluster init` or "
                    "`ha cluster join` first"
                )
        return binary

    async def _spawn(self, binary: str) -> None:
        cfg = self.config
        args = etcd_args(cfg, binary, force_new_cluster=self._force_new)
        with cfg.log_path.open("ab") as logf:
            logf.write(f"--- vigil: starting etcd {time.strftime('%F %T')}\n".encode())
            logf.flush()
            self._log_offset = logf.tell()
            self._proc = await asyncio.create_subprocess_exec(
                *with_parent_death_signal(args),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logf,
                stderr=asyncio.subprocess.STDOUT,
            )
        self._started_at = time.monotonic()
        self.state = "starting"
        log.info("etcd member %s started, pid %d", cfg.name, self._proc.pid)

    async def start(self) -> None:
        """Start etcd and supervise it; wait_healthy() tells whether it came up."""
        if self._proc is not None and self._proc.returncode is None:
            raise EtcdStartError(f"etcd member {self.config.name} already runs as pid {self.pid}")
        binary = self._preflight()
        self._stopping = False
        self._ever_healthy = False
        self.failure = None
        await self._spawn(binary)
        self._supervisor = asyncio.create_task(
            self._supervise(binary), name=f"etcd-supervisor-{self.config.name}"
        )

    async def healthy(self, within: float = 1.0) -> bool:
        ok = await check_health(self.client_url, self.config.tls, within)
        if ok:
            self._ever_healthy = True
            if self.state == "starting":
                self.state = "running"
        return ok

    async def wait_healthy(self, within: float = 10.0) -> None:
        """Return once /health is true; raise EtcdStartError with etcd's log tail otherwise."""
        deadline = time.monotonic() + within
        while True:
            if self.state in ("failed", "removed", "stopped"):
                raise EtcdStartError(
                    f"etcd member {self.config.name} {self.failure or 'is ' + self.state}; "
                    f"etcd log tail ({self.config.log_path}):\n{self.log_tail()}"
                )
            if self.state != "backoff" and await self.healthy(min(1.0, within)):
                return
            if time.monotonic() >= deadline:
                raise EtcdStartError(
                    f"etcd member {self.config.name} not healthy within {within:g}s (no "
                    "leader: are the other members up and reachable?); etcd log tail "
                    f"({self.config.log_path}):\n{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    # -- supervision ---------------------------------------------------------------------

    def _why_exit(self, rc: int) -> str:
        tail = self.log_tail(40, since=self._log_offset)
        if "address already in use" in tail:
            return f"exited with status {rc}: a listen address is already in use"
        if "member has already been bootstrapped" in tail:
            return (
                f"exited with status {rc}: the data dir {self.config.data_dir} has no member "
                "but the cluster already knows this name: wipe the data dir and join again"
            )
        if "data-dir used by this member must be removed" in tail:
            return (
                f"exited with status {rc}: this member was removed from the cluster; wipe "
                f"{self.config.data_dir} and join again"
            )
        return f"exited with status {rc}"

    async def _supervise(self, binary: str) -> None:
        while True:
            proc = self._proc
            assert proc is not None
            rc = await proc.wait()
            if self._stopping:
                return
            ran_for = time.monotonic() - self._started_at
            self.last_exit, self.last_exit_at = rc, time.time()
            # The whole output of this run: etcd logs a hundred lines of shutdown after
            # saying it was removed.
            output = self.log_tail(100_000, since=self._log_offset)
            if any(m in output for m in _REMOVED_MARKERS):
                self.state, self.failure = "removed", "was removed from the cluster"
            elif not self._ever_healthy and self.restarts == 0:
                # Never came up: retrying would only fail the same way, so report instead.
                self.state, self.failure = "failed", self._why_exit(rc)
            else:
                self.state = "backoff"
            log.warning("etcd member %s exited with %d -> %s", self.config.name, rc, self.state)
            if self.on_exit is not None:
                self.on_exit(rc, self.state)
            if self.state != "backoff":
                return
            await asyncio.sleep(self.backoff.delay(ran_for))
            if self._stopping:
                return
            try:
                self._preflight()
                await self._spawn(binary)
            except (EtcdStartError, OSError) as e:
                self.state, self.failure = "failed", f"could not be restarted: {e}"
                log.error("etcd member %s: %s", self.config.name, self.failure)
                return
            self.restarts += 1

    # -- stop ----------------------------------------------------------------------------

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after grace seconds (at once if grace is 0); the supervisor
        does not restart it."""
        self._stopping = True
        sup, self._supervisor = self._supervisor, None
        if sup is not None:
            sup.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sup
        proc = self._proc
        if proc is not None and proc.returncode is None and grace <= 0:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        elif proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                log.warning("etcd pid %d ignored SIGTERM for %gs; killing", proc.pid, grace)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self.state not in ("failed", "removed"):
            self.state = "stopped"

    async def force_new_cluster(self, within: float = 10.0) -> None:
        """Restart this member as the only member of a new cluster, keeping its data.

        For two-node mode after the peer was fenced. The flag is used for this one start
        only: later (re)starts run without it, as etcd recommends.
        """
        # SIGKILL at once: etcd's write-ahead log is fsynced, so a killed member restarts
        # intact, and a graceful stop without the lost peer took about a second of the
        # failover.
        await self.stop(grace=0.0)
        self._force_new = True
        try:
            await self.start()
            await self.wait_healthy(within)
        finally:
            self._force_new = False

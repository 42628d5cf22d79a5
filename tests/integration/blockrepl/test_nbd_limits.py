"""What one NBD client can take from the server: memory for replies it does not read, and
a connection slot without finishing the handshake.

The memory test uses a real replica pair: the Primary must keep serving other clients and
keep its replication link while a client pipelines 64 READs of 32 MiB (the maximum block
size the server advertises, so the server may not refuse them) and reads no reply.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from blockrepl.nbd import protocol as p

from .conftest import MiB, Served, start_server
from .nbdclient import NbdClient
from .replicas import Replica, replica_pair, shm_dir

READS = 64
READ_SIZE = 32 * MiB
# The server's RSS must stay below this while the replies pile up. Unbounded, 64 replies
# of 32 MiB are 2 GiB per client. Bounded, the unsent replies of all connections fit the
# server-wide byte budget (256 MiB; one client alone: its 64 MiB), plus one 32 MiB reply
# being copied into the transport's buffer (Python 3.11), over a baseline of ~30-50 MB:
# at most ~340 MB; 400 MB leaves the allocator some slack.
RSS_BOUND = 400 * MiB
WATCH = 10.0  # seconds the hog is left pressing
OTHER_CLIENT_MAX = 3.0  # seconds a small READ+WRITE of another client may take meanwhile


def vm_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def raw_handshake(sock: socket.socket, export: str = "blockrepl") -> int:
    """Fixed newstyle with EXPORT_NAME; the export's size."""
    greeting = recv_exactly(sock, 18)
    assert struct.unpack(">QQ", greeting[:16]) == (p.NBDMAGIC, p.IHAVEOPT)
    name = export.encode()
    sock.sendall(struct.pack(">I", 3) + struct.pack(">QII", p.IHAVEOPT, 1, len(name)) + name)
    size: int = struct.unpack(">QH", recv_exactly(sock, 10))[0]
    return size


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def read_request(cookie: int, offset: int, length: int) -> bytes:
    return struct.pack(">IHHQQI", p.REQUEST_MAGIC, 0, p.Cmd.READ, cookie, offset, length)


@contextmanager
def hog(path: str) -> Iterator[socket.socket]:
    """A client that sends READS x READ_SIZE reads and reads none of the replies."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    try:
        s.settimeout(10)
        s.connect(path)
        size = raw_handshake(s)
        last = size - READ_SIZE
        assert last >= 0, f"export of {size} bytes is smaller than one read"
        s.sendall(b"".join(read_request(i + 1, last * (i % 2), READ_SIZE) for i in range(READS)))
        yield s
    finally:
        s.close()


async def small_io(sock: str) -> float:
    started = time.monotonic()
    client = await NbdClient.connect(unix=sock)
    try:
        await client.write(4096, b"\x5a" * 4096)
        assert await client.read(4096, 4096) == b"\x5a" * 4096
    finally:
        await client.close()
    return time.monotonic() - started


def watch(pid: int, sock: str) -> tuple[int, float]:
    """Peak RSS of the server over WATCH seconds, and the slowest small I/O of another
    client meanwhile (one a second). Stops early once RSS passed RSS_BOUND."""
    peak, slowest = 0, 0.0
    deadline = time.monotonic() + WATCH
    next_io = 0.0
    while time.monotonic() < deadline:
        peak = max(peak, vm_kib(pid, "VmRSS") * 1024)
        if peak > RSS_BOUND:
            break  # proven; do not let it eat the machine
        if time.monotonic() >= next_io:
            slowest = max(slowest, asyncio.run(small_io(sock)))
            next_io = time.monotonic() + 1.0
        time.sleep(0.05)
    return peak, slowest


def server_pid(r: Replica) -> int:
    assert r.proc is not None
    assert b"blockrepl.cli" in Path(f"/proc/{r.proc.pid}/cmdline").read_bytes()
    return r.proc.pid


@pytest.mark.slow
@pytest.mark.parametrize("hogs", [1, 5])
def test_clients_not_reading_big_replies_are_held_back_alone(tmp_path: Path, hogs: int) -> None:
    """One hog: held at its connection's budget. Five: together at the server-wide
    budget, and another client's small requests still pass (its reserve)."""
    with shm_dir() as shm, replica_pair(shm, "72M") as (_net, a, b, _secret):
        pid = server_pid(a)
        baseline = vm_kib(pid, "VmRSS") * 1024
        hwm_before = vm_kib(pid, "VmHWM") * 1024
        links = b.status()["wire"]["connections"]
        with ExitStack() as stack:
            for _ in range(hogs):
                stack.enter_context(hog(a.sock))
            peak, slowest = watch(pid, a.sock)
            hwm = vm_kib(pid, "VmHWM") * 1024
            st_a, st_b = a.status(), b.status()
        print(
            f"{hogs} hog(s): RSS baseline {baseline / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB, "
            f"VmHWM {hwm_before / MiB:.0f} -> {hwm / MiB:.0f} MiB; "
            f"other client's slowest small I/O {slowest:.3f} s"
        )
        assert peak < RSS_BOUND, f"server RSS reached {peak / MiB:.0f} MiB"
        assert hwm < RSS_BOUND, f"server VmHWM {hwm / MiB:.0f} MiB"
        assert slowest < OTHER_CLIENT_MAX, f"another client waited {slowest:.1f} s"
        assert st_a["connection"] == "Connected" and st_b["connection"] == "Connected"
        assert st_b["wire"]["connections"] == links, "the replication link was lost meanwhile"

        async def big_read() -> bytes:  # and the maximum read still works for a reader
            client = await NbdClient.connect(unix=a.sock)
            try:
                return await client.read(0, READ_SIZE)
            finally:
                await client.close()

        assert len(asyncio.run(big_read())) == READ_SIZE


def silent_client(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    assert len(recv_exactly(s, 18)) == 18  # the greeting; then the client says nothing
    return s


def closed_after(s: socket.socket) -> float:
    """Seconds until the server closes ``s`` (reading whatever it sends)."""
    started = time.monotonic()
    while s.recv(4096):
        pass
    return time.monotonic() - started


def test_handshake_timeout_closes_silent_and_dribbling_clients(volume: str, tmp_path: Path) -> None:
    srv = start_server(
        volume, str(tmp_path / "nbd.sock"), "--force", "--nbd-handshake-timeout", "1"
    )
    try:
        with silent_client(srv.port) as s:
            assert closed_after(s) < 3
        with silent_client(srv.port) as s:
            # Flags, then an option header a byte at a time: bytes keep coming, but the
            # handshake as a whole must end in time.
            s.sendall(struct.pack(">I", 3))
            header = struct.pack(">QII", p.IHAVEOPT, p.Opt.EXPORT_NAME, 9)
            started = time.monotonic()
            with pytest.raises((BrokenPipeError, ConnectionResetError)):
                for byte in header:
                    s.sendall(bytes([byte]))
                    time.sleep(0.3)
            assert time.monotonic() - started < 3
        with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
            raw_handshake(s)
            time.sleep(1.5)  # idle after the handshake: not limited
            s.sendall(read_request(7, 0, 4096))
            reply = recv_exactly(s, 16 + 4096)
            assert struct.unpack(">IIQ", reply[:16]) == (p.SIMPLE_REPLY_MAGIC, 0, 7)
        log = Path(srv.sock + ".log").read_text()
        assert "did not finish the handshake within 1 s" in log, log
        assert "127.0.0.1" in log
    finally:
        srv.stop()


@pytest.mark.slow
def test_handshake_timeout_by_default(served: Served) -> None:
    with silent_client(served.port) as s:
        took = closed_after(s)
    assert 9 < took < 13, f"closed after {took:.1f} s"

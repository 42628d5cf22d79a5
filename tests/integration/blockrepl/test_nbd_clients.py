"""The NBD server against real clients: nbdinfo, nbdcopy, qemu-io/qemu-img, nbdsh."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import struct
from pathlib import Path

import pytest

from blockrepl.layout import AL_EXTENT_SIZE
from blockrepl.nbd import protocol as p

from .conftest import MiB, Served, run, show_md, start_server, system_python_env

pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("nbdinfo", "nbdcopy", "qemu-io", "qemu-img")),
    reason="needs libnbd-bin and qemu-utils",
)


def test_nbdinfo_sees_size_and_flags(served: Served) -> None:
    for uri in (served.unix_uri, served.tcp_uri):
        info = json.loads(run("nbdinfo", "--json", uri))
        exp = info["exports"][0]
        assert exp["export-size"] == show_md(served.backing)["data_size"]
        assert exp["can_flush"] and exp["can_fua"] and exp["can_trim"] and exp["can_zero"]
        assert not exp["is_read_only"]
        assert exp["block_size_maximum"] == 32 * MiB
    listing = run("nbdinfo", "--list", "--json", served.tcp_uri)
    assert [e["export-name"] for e in json.loads(listing)["exports"]] == ["blockrepl"]


def test_nbdcopy_roundtrip_many_in_flight(served: Served, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(12 * MiB))
    run("nbdcopy", "--requests=64", "--request-size=65536", str(src), served.tcp_uri)
    out = tmp_path / "out.bin"
    run("nbdcopy", served.unix_uri, str(out))
    assert out.read_bytes()[: 12 * MiB] == src.read_bytes()


def test_qemu_io_patterns_flush_zero_discard(served: Served, tmp_path: Path) -> None:
    out = run(
        "qemu-io",
        "-f",
        "raw",
        served.tcp_uri,
        "-c",
        "write -P 0x55 0 1M",
        "-c",
        "write -f -P 0x66 1M 1M",  # -f: FUA
        "-c",
        "flush",
        "-c",
        "write -z 2M 1M",
        "-c",
        "discard 3M 64k",
        "-c",
        "read -P 0x55 0 1M",
        "-c",
        "read -P 0x66 1M 1M",
        "-c",
        "read -P 0 2M 1M",
    )
    assert "Pattern verification failed" not in out and out.count("read 1048576/1048576") == 3
    ref = tmp_path / "ref.raw"
    run("qemu-img", "convert", "-f", "raw", "-O", "raw", served.unix_uri, str(ref))
    run("qemu-img", "compare", "-f", "raw", "-F", "raw", str(ref), served.tcp_uri)
    info = run("qemu-img", "info", "--output=json", served.unix_uri)
    assert json.loads(info)["virtual-size"] == show_md(served.backing)["data_size"]


@pytest.mark.skipif(not shutil.which("nbdsh"), reason="python3-libnbd not installed")
def test_nbdsh_option_haggling_and_error_codes(served: Served) -> None:
    script = f"""
import nbd
h = nbd.NBD()
h.set_opt_mode(True)
h.connect_unix({served.sock!r})
print("list", h.opt_list(lambda name, desc: print("export", name)))
h.set_export_name("nosuch")
try:
    h.opt_info()
except nbd.Error as e:
    print("unknown-export", e.errno is not None or "unknown" in str(e).lower())
h.set_export_name("blockrepl")
h.opt_go()
size = h.get_size()
h.pwrite(b"\\xab" * 4096, size - 4096, nbd.CMD_FLAG_FUA)
assert h.pread(4096, size - 4096) == b"\\xab" * 4096
h.set_strict_mode(0)
for off, n in ((size - 512, 1024), (size, 1)):
    try:
        h.pread(n, off)
    except nbd.Error as e:
        print("oob-read", e.errno == "EINVAL")
try:
    h.pwrite(b"x" * 1024, size - 512)
except nbd.Error as e:
    print("oob-write", e.errno == "ENOSPC")
h.flush()
h.shutdown()
print("done")
"""
    out = run("nbdsh", "-c", script, env=system_python_env())
    assert "export blockrepl" in out
    assert "unknown-export True" in out
    assert out.count("oob-read True") == 2 and "oob-write True" in out and "done" in out


def _read_reply(s: socket.socket) -> tuple[int, int]:
    hdr = _recv_exact(s, 16)
    magic, err, cookie = struct.unpack(">IIQ", hdr)
    assert magic == p.SIMPLE_REPLY_MAGIC
    return err, cookie


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def _handshake(s: socket.socket) -> int:
    assert _recv_exact(s, 18)[:16] == b"NBDMAGICIHAVEOPT"
    s.sendall(struct.pack(">I", 3))
    s.sendall(struct.pack(">QII", p.IHAVEOPT, p.Opt.EXPORT_NAME, 9) + b"blockrepl")
    size, _flags = struct.unpack(">QH", _recv_exact(s, 10))
    return int(size)


def test_pipelined_requests_are_all_answered_by_cookie(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port)) as s:
        size = _handshake(s)
        reqs = b""
        for i in range(32):
            payload = bytes([i]) * 65536
            reqs += struct.pack(
                ">IHHQQI", p.REQUEST_MAGIC, 0, p.Cmd.WRITE, 1000 + i, i * 65536, 65536
            )
            reqs += payload
        reqs += struct.pack(">IHHQQI", p.REQUEST_MAGIC, 0, p.Cmd.READ, 5, size, 1)  # EINVAL
        s.sendall(reqs)
        replies = dict(_read_reply(s)[::-1] for _ in range(33))
        assert replies[5] == 22 and all(replies[1000 + i] == 0 for i in range(32))
        s.sendall(struct.pack(">IHHQQI", p.REQUEST_MAGIC, 0, p.Cmd.READ, 7, 31 * 65536, 65536))
        assert _read_reply(s) == (0, 7)
        assert _recv_exact(s, 65536) == bytes([31]) * 65536
        s.sendall(struct.pack(">IHHQQI", p.REQUEST_MAGIC, 0, p.Cmd.DISC, 8, 0, 0))
        assert s.recv(1) == b""


def _data_digest(backing: str, size: int) -> str:
    with open(backing, "rb") as f:
        return hashlib.sha256(f.read(size)).hexdigest()


def test_garbage_on_the_port_closes_cleanly_and_touches_nothing(served: Served) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    size = int(show_md(served.backing)["data_size"])  # type: ignore[call-overload]
    run("qemu-io", "-f", "raw", served.tcp_uri, "-c", "write -P 0x42 0 4M")
    before = _data_digest(served.backing, size)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        phase=st.sampled_from(["greeting", "options", "transmission"]),
        junk=st.binary(min_size=1, max_size=2048),
    )
    def poke(phase: str, junk: bytes) -> None:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
            _recv_exact(s, 18)
            if phase != "greeting":
                s.sendall(struct.pack(">I", 3))
            if phase == "transmission":
                s.sendall(struct.pack(">QII", p.IHAVEOPT, p.Opt.EXPORT_NAME, 9) + b"blockrepl")
                _recv_exact(s, 10)
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            while s.recv(65536):  # the server must close, not hang or crash
                pass

    poke()
    assert served.proc.poll() is None, "server died"
    assert _data_digest(served.backing, size) == before
    run("qemu-io", "-f", "raw", served.tcp_uri, "-c", "read -P 0x42 0 4M")


def test_clean_shutdown_persists_bitmap_and_generation(served: Served) -> None:
    run(
        "qemu-io",
        "-f",
        "raw",
        served.tcp_uri,
        "-c",
        "write -P 1 4096 8192",
        "-c",
        f"write -P 2 {9 * MiB} 4096",
    )
    served.stop()
    assert served.proc.returncode == 0
    md = show_md(served.backing)
    assert md["clean_shutdown"] and md["active_extents"] == []
    assert "CONSISTENT" in md["flags"] and "PRIMARY_IND" not in md["flags"]  # type: ignore[operator]
    assert md["generation"]["bitmap"] == "0000000000000004"  # type: ignore[index]
    bm = json.loads(
        run(sys_exe(), "-m", "blockrepl.cli", "dump-bitmap", "--backing", served.backing, "--json")
    )
    assert [(r["offset"], r["length"]) for r in bm["runs"]] == [(4096, 8192), (9 * MiB, 4096)]


def test_crash_replays_activity_log(served: Served, tmp_path: Path) -> None:
    run(
        "qemu-io",
        "-f",
        "raw",
        served.tcp_uri,
        "-c",
        "write -P 1 0 4096",
        "-c",
        f"write -P 2 {2 * AL_EXTENT_SIZE + 5} 100",
    )
    served.stop(signal.SIGKILL)
    md = show_md(served.backing)
    assert not md["clean_shutdown"] and md["active_extents"] == [0, 2]
    assert "PRIMARY_IND" in md["flags"]  # type: ignore[operator]
    again = start_server(served.backing, str(tmp_path / "again.sock"))
    try:
        md = show_md(served.backing)
        assert "CRASHED_PRIMARY" in md["flags"]  # type: ignore[operator]
        # Both hot extents are now entirely out of sync (AL applied to the bitmap).
        assert md["dirty_bytes"] == 2 * AL_EXTENT_SIZE
    finally:
        again.stop()


def test_serve_refuses_inconsistent_disk_without_force(volume: str) -> None:
    from .conftest import blockrepl

    res = blockrepl("serve", "--backing", volume, "--unix", volume + ".sock", check=False)
    assert res.returncode == 1 and "Inconsistent" in res.stderr and "--force" in res.stderr


def sys_exe() -> str:
    import sys

    return sys.executable

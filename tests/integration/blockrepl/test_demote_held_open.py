"""Demote is refused while an NBD client is attached to the export (DRBD: "Device is held
open by someone"), and accepted once the clients are gone: what a cluster does on a
switchover is stop the client, then demote."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from .nbdclient import NbdClient, NbdError
from .replicas import Replica, replica_pair, wait_for


def cli_demote(r: Replica, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "blockrepl.cli", "demote", "--control", r.ctl, *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


async def attached(sock: str) -> NbdClient:
    client = await NbdClient.connect(unix=sock)
    await client.write(0, b"\x17" * 4096)
    return client


def test_demote_refused_while_clients_attached_then_accepted(tmp_path: Path) -> None:
    with replica_pair(tmp_path) as (_net, a, b, _secret):

        async def scenario() -> None:
            one = await attached(a.sock)
            two = await attached(a.sock)
            answer = await asyncio.to_thread(a.control, "demote", wait=0)
            assert not answer["ok"]
            assert "held open: 2 NBD client(s)" in answer["error"], answer
            assert "detach them first" in answer["error"]
            await two.close()
            res = await asyncio.to_thread(cli_demote, a, "--wait", "0")
            assert res.returncode == 1, res
            assert "demote refused: the device is held open: 1 NBD client(s)" in res.stderr
            st = await asyncio.to_thread(a.status)
            assert st["role"] == "Primary"
            await one.write(4096, b"\x18" * 4096)  # the client was not disturbed
            await one.flush()
            await one.close()

        asyncio.run(scenario())
        # Stopped just now: the default wait covers the moment its end takes to be seen.
        res = cli_demote(a)
        assert res.returncode == 0, res.stderr
        assert a.status()["role"] == "Secondary"
        wait_for(lambda: b.status()["peer_role"] == "Secondary", 10, "B to see A demoted")


def test_demote_waits_for_a_client_being_stopped(tmp_path: Path) -> None:
    with replica_pair(tmp_path) as (_net, a, _b, _secret):
        result: dict[str, Any] = {}

        async def scenario() -> None:
            client = await attached(a.sock)

            def demote() -> None:
                started = time.monotonic()
                result["answer"] = a.control("demote", wait=10)
                result["took"] = time.monotonic() - started

            waiter = threading.Thread(target=demote)
            waiter.start()
            await asyncio.sleep(1.5)
            assert "answer" not in result, "demote did not wait for the attached client"
            await client.close()
            await asyncio.to_thread(waiter.join, 15)

        asyncio.run(scenario())
        assert result["answer"]["ok"], result
        assert result["answer"]["status"]["role"] == "Secondary"
        assert 1.5 <= result["took"] < 5, result


def test_a_client_still_negotiating_does_not_hold_it_and_is_refused_after(
    tmp_path: Path,
) -> None:
    with replica_pair(tmp_path) as (_net, a, _b, _secret):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(a.sock)
            assert len(s.recv(18)) == 18  # greeting read; no export chosen yet
            answer = a.control("demote", wait=0)
            assert answer["ok"], answer
            assert answer["status"]["role"] == "Secondary"
        with pytest.raises(NbdError, match="refused export"):  # a Secondary serves none
            asyncio.run(NbdClient.connect(unix=a.sock))

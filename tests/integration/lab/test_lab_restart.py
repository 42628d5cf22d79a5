"""A payload that dies is started again by the node's init, as systemd's Restart=always."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from lab.testing import running_lab
from tests.integration.lab.conftest import HTTP_PAYLOAD, needs_root, pid_alive, wait_http

pytestmark = [needs_root, pytest.mark.slow]


def test_killed_payload_is_restarted(tmp_path: Path) -> None:
    with running_lab(1, HTTP_PAYLOAD, disk_root=tmp_path, restart_delay=0.1) as lab:
        ip = lab.node_ip("n1")
        wait_http(lab, "client", ip, "n1")
        init = lab.node_pid("n1")
        payloads = [p for p in lab.node_pids("n1") if p != init]
        assert len(payloads) == 1
        os.kill(payloads[0], signal.SIGKILL)
        wait_http(lab, "client", ip, "n1", within=10)
        again = [p for p in lab.node_pids("n1") if p != init]
        assert len(again) == 1 and again[0] != payloads[0]
        assert not pid_alive(payloads[0])

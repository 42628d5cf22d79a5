"""What an unreachable etcd is called: each message names the cause an operator can act on.

The details strings are gRPC's own, captured from a TLS etcd on this machine: frozen with
SIGSTOP, and reached with a wrong CA and with a client certificate of another CA.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from controller.store import etcd_channel
from controller.store.etcd_channel import describe_unavailable

FROZEN = (
    "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.57:60873: "
    "Handshake read failed (Endpoint closing)"
)
WRONG_CA = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.126:36557: Tls "
    "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
    "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate: OK"
)
WRONG_CLIENT = (
    "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.126:36557: "
    "Unwrap failed (TSI_DATA_CORRUPTED)"
)


def test_a_frozen_etcd_is_not_called_a_certificate_problem() -> None:
    said = describe_unavailable(FROZEN)
    assert "frozen, hung or overloaded" in said and "certificates are not in question" in said


def test_certificate_problems_say_so() -> None:
    for details in (WRONG_CA, WRONG_CLIENT):
        assert describe_unavailable(details).startswith("TLS handshake failed")
        assert "check the CA certificate and the client certificate" in (
            describe_unavailable(details)
        )


def test_other_causes() -> None:
    assert describe_unavailable("connect: Connection refused") == "connection refused"
    assert "quorum lost" in describe_unavailable("etcdserver: no leader")


class _FlakyChannel:
    """A channel that reports TRANSIENT_FAILURE (one connection attempt failed) while a
    call through it gets an answer: it has reconnected meanwhile."""

    def get_state(self, try_to_connect: bool = False) -> object:
        return grpc.ChannelConnectivity.TRANSIENT_FAILURE


class _AnsweringKV:
    def __init__(self, channel: object) -> None:
        pass

    async def Range(self, request: object, timeout: float) -> object:
        return object()


def test_a_channel_that_answers_is_ready_though_one_attempt_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Under load one TLS handshake can fail; the command then said "connection failed"
    # although the probe call had just been answered.
    monkeypatch.setattr(etcd_channel.rpc, "KVStub", _AnsweringKV)
    conn = etcd_channel.EtcdConnection(["http://127.0.0.1:2379"], 1.0, None)
    reason = asyncio.run(conn._wait_ready(_FlakyChannel(), time.monotonic() + 1.0))
    assert reason is None

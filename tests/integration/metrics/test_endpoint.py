"""The agent's /metrics server on a real socket: plain HTTP, TLS and basic auth as a
web config file sets them (real certificates, real bcrypt), and every setting that
cannot act refused by name."""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from pathlib import Path

import bcrypt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.api.errors import InputError
from controller.bootstrap import pki
from controller.bootstrap.node_config import MetricsSettings
from nodeagent.metrics.collector import Sources
from nodeagent.metrics.endpoint import serve, web_config
from nodeagent.metrics.webconfig import load_web_config
from tests.unit.nodeagent.metrics.helpers import link


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(
    port: int, path: str = "/metrics", *, tls: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
) -> tuple[int, str]:  # fmt: skip
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=tls, server_hostname="127.0.0.1" if tls else None
    )
    header = ""
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        header = f"Authorization: Basic {token}\r\n"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split(" ")[1]), body


def certificates(tmp_path: Path) -> pki.PKIPaths:
    ca = pki.create_ca("metrics-test")
    paths = pki.PKIPaths(tmp_path / "pki")
    paths.directory.mkdir()
    pki.write_public(paths.ca_cert, pki.cert_pem(ca.cert))
    pki.issue_local(ca, paths, "n1", ["127.0.0.1"])
    return paths


async def test_plain_http_serves_the_exposition_and_nothing_else() -> None:
    port = free_port()
    lk, _end = link()

    settings = MetricsSettings(listen=f"127.0.0.1:{port}")
    server = await serve(settings, Sources("n1", "0.1", lk), None)
    assert server is not None
    try:
        status, body = await get(port)
        assert status == 200
        names = {f.name for f in text_string_to_metric_families(body)}
        assert {"vigil_agent_info", "vigil_node_serving", "vigil_process_cpu_seconds"} <= names
        assert (await get(port, "/nope"))[0] == 404
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert (await reader.read()).startswith(b"HTTP/1.1 405 ")
        writer.close()
        # The address is taken now: a second agent there is refused, naming the setting.
        with pytest.raises(InputError, match=rf"metrics.listen 127.0.0.1:{port}: cannot listen"):
            await serve(settings, Sources("n1", "0.1", lk), None)
    finally:
        await server.close()


async def test_disabled_serves_nothing() -> None:
    port = free_port()
    lk, _end = link()

    settings = MetricsSettings(listen=f"127.0.0.1:{port}", enabled=False)
    assert await serve(settings, Sources("n1", "0.1", lk), None) is None
    with pytest.raises(OSError):
        await get(port)


async def test_tls_and_basic_auth_from_a_web_config_file(tmp_path: Path) -> None:
    paths = certificates(tmp_path)
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$")
    config = tmp_path / "web.yaml"
    config.write_text(
        f"tls_server_config:\n  cert_file: pki/{Path(paths.server_cert).name}\n"
        f"  key_file: pki/{Path(paths.server_key).name}\n"
        f"basic_auth_users:\n  prom: '{hashed}'\n"
    )
    port = free_port()
    settings = MetricsSettings(listen=f"127.0.0.1:{port}", web_config_file=str(config))
    lk, _end = link()

    server = await serve(settings, Sources("n1", "0.1", lk), web_config(settings))
    assert server is not None
    client = ssl.create_default_context(cafile=paths.ca_cert)
    try:
        assert (await get(port, tls=client))[0] == 401
        assert (await get(port, tls=client, auth=("prom", "wrong")))[0] == 401
        assert (await get(port, tls=client, auth=("other", "s3cret")))[0] == 401
        for _ in range(2):  # the second time from the remembered check
            status, body = await get(port, tls=client, auth=("prom", "s3cret"))
            assert status == 200 and "vigil_agent_info" in body
        # Plain HTTP to the TLS port: no exposition.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = await reader.read()
        except ConnectionError:
            answer = b""
        writer.close()
        assert b"vigil_" not in answer and b" 200 " not in answer
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("basic_auth_users: {prom: plaintext}", "basic_auth_users.*bcrypt hash"),
        ("tls_server_config: {cert_file: a.crt}", "tls_server_config.key_file"),
        ("tls_server_config: {cert_file: a.crt, key_file: a.key}", "tls_server_config.cert_file"),
        ("http_server_config: {http2: true}", "http_server_config"),
        ("tls_server_config: {cert_file: a, key_file: b, client_ca_file: c}", "client_ca_file"),
    ],
)
def test_a_web_config_that_cannot_act_is_refused_by_name(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "web.yaml"
    config.write_text(text)
    with pytest.raises(InputError, match=message):
        load_web_config(config)

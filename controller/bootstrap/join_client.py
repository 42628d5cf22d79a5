"""``ha cluster join``: get certificates and etcd membership from a join endpoint.

Keys are generated here and never sent: the endpoint signs CSRs. The endpoint is
trusted through the CA fingerprint in the token: the CA certificate it hands out on
an unverified first connection must hash to that fingerprint, and the join request
itself travels on a second connection that verifies the server against that CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.bootstrap import pki
from controller.bootstrap.node_config import (
    CLIENT_PORT,
    PEER_PORT,
    EtcdSettings,
    NodeConfig,
    load_node_config,
    save_client_config,
    save_node_config,
)
from controller.bootstrap.protocol import (
    PROTOCOL_VERSION,
    JoinProtocolError,
    read_message,
    write_message,
)
from controller.bootstrap.token import JoinToken


class JoinError(Exception):
    """Joining failed; the message says why and what to do."""


@dataclass(frozen=True)
class JoinPaths:
    node_config: Path
    client_config: Path
    pki_dir: Path
    data_dir: Path


OnProgress = Callable[[str], object]


async def _exchange(
    token: JoinToken,
    ctx: ssl.SSLContext,
    msg: dict[str, Any],
    within: float,
    on_progress: OnProgress | None = None,
) -> dict[str, Any]:
    writer = None
    try:
        async with asyncio.timeout(within) as deadline:
            reader, writer = await asyncio.open_connection(
                token.host, token.port, ssl=ctx, server_hostname=token.host
            )
            await write_message(writer, msg)
            answer = await read_message(reader)
            while "progress" in answer:
                # The server says what it waits for and how long that may take.
                if on_progress is not None:
                    on_progress(str(answer["progress"]))
                wait = max(within, float(answer.get("within", 0)) + 1.0)
                deadline.reschedule(asyncio.get_running_loop().time() + wait)
                answer = await read_message(reader)
    except TimeoutError:
        raise JoinError(
            f"join endpoint {token.endpoint} did not answer within {within:g}s"
        ) from None
    except ssl.SSLCertVerificationError as e:
        raise JoinError(
            f"join endpoint {token.endpoint} presented a certificate not signed by the "
            f"cluster CA ({e.verify_message}); is the token's address right?"
        ) from None
    except (OSError, ssl.SSLError) as e:
        raise JoinError(
            f"cannot reach the join endpoint {token.endpoint}: {e}; is the first node's "
            "agent running, and the address in the token reachable from here?"
        ) from None
    except JoinProtocolError as e:
        raise JoinError(f"join endpoint {token.endpoint} answered garbage: {e}") from None
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
    if not answer.get("ok"):
        raise JoinError(f"join refused by {token.endpoint}: {answer.get('error', '(no reason)')}")
    return answer


async def fetch_ca(token: JoinToken, within: float = 10.0) -> bytes:
    """The cluster CA certificate, checked against the token's fingerprint."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # Nothing to verify against yet: the answer is trusted only if it matches the pin.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    answer = await _exchange(token, ctx, {"op": "ca"}, within)
    pem = str(answer.get("ca", "")).encode()
    try:
        got = pki.fingerprint_pem(pem)
    except ValueError:
        raise JoinError(f"join endpoint {token.endpoint} sent no valid CA certificate") from None
    if got != token.ca_sha256:
        raise JoinError(
            f"the CA of {token.endpoint} has sha256 {got}, but the token pins "
            f"{token.ca_sha256}: wrong cluster, wrong address, or someone in between. "
            "Check the token; do not join"
        )
    return pem


async def join(
    token: JoinToken,
    node: str,
    paths: JoinPaths,
    *,
    client_port: int = CLIENT_PORT,
    peer_port: int = PEER_PORT,
    within: float = 10.0,
    on_progress: OnProgress | None = None,
) -> NodeConfig:
    """Join: fetch and pin the CA, send CSRs, write PKI, node config and client config.

    After this the node's agent must start etcd soon: the member was added, and until it
    runs the cluster counts it as down (a 1->2 member cluster has no quorum meanwhile).
    """
    pki_paths = pki.PKIPaths(paths.pki_dir)
    if paths.node_config.exists() and load_node_config(paths.node_config).state != "left":
        raise JoinError(
            f"this node already has {paths.node_config}: it was initialised or joined "
            "before. Run `ha cluster leave` first (or remove that file)"
        )
    if paths.data_dir.exists() and any(paths.data_dir.iterdir()):
        raise JoinError(
            f"etcd data dir {paths.data_dir} is not empty: an old member's data would "
            "clash with the cluster; remove it first"
        )
    ca_pem = await fetch_ca(token, within)
    keys = {what: pki.new_key() for what in ("server", "client", "admin")}
    csrs = {what: pki.make_csr(k, f"{what}:{node}").decode() for what, k in keys.items()}
    # Verify against the pinned CA from here on, hostname included (SAN = its address).
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    answer = await _exchange(
        token,
        ctx,
        {
            "op": "join",
            "version": PROTOCOL_VERSION,
            "token_id": token.id,
            "secret": token.secret,
            "node": node,
            "peer_port": peer_port,
            "client_port": client_port,
            "csrs": csrs,
        },
        within,
        on_progress,
    )
    try:
        certs = answer["certs"]
        pki.write_public(pki_paths.ca_cert, ca_pem)
        pki.write_private(pki_paths.heartbeat_key, str(answer["heartbeat_key"]).encode())
        for what, cert_path, key_path in (
            ("server", pki_paths.server_cert, pki_paths.server_key),
            ("client", pki_paths.client_cert, pki_paths.client_key),
            ("admin", pki_paths.admin_cert, pki_paths.admin_key),
        ):
            pki.write_private(key_path, pki.key_pem(keys[what]))
            pki.write_public(cert_path, str(certs[what]).encode())
        cfg = NodeConfig(
            node=node,
            cluster=str(answer["cluster"]),
            address=str(answer["address"]),
            data_dir=str(paths.data_dir),
            pki_dir=str(paths.pki_dir),
            etcd=EtcdSettings(
                client_urls=[str(answer["client_url"])],
                peer_url=str(answer["peer_url"]),
                initial_cluster=str(answer["initial_cluster"]),
                initial_cluster_state="existing",
                initial_cluster_token=str(answer["initial_cluster_token"]),
                heartbeat_ms=int(answer["heartbeat_ms"]),
                election_ms=int(answer["election_ms"]),
            ),
            client_config=str(paths.client_config.absolute()),
        )
        endpoints = [str(e) for e in answer["endpoints"]]
    except (KeyError, TypeError, ValueError) as e:
        raise JoinError(f"join endpoint {token.endpoint} sent an incomplete answer: {e}") from None
    save_node_config(cfg, paths.node_config)
    save_client_config(cfg, endpoints, paths.client_config)
    return cfg

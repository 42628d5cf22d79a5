"""Turn etcd's bare "permission denied" into who was refused what, and who can grant it.

etcd says only "etcdserver: permission denied". The user is the CN of the client
certificate this connection presents (etcd's rule for gRPC with client-cert auth); the
role is asked of etcd (a user may read its own record); the key is the one of the
request's that needs the highest role (access.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from aetcd import rpc
from cryptography import x509
from cryptography.x509.oid import NameOID

from controller.store import access
from controller.store.errors import PermissionDeniedError
from controller.store.etcd_channel import EtcdConnection

_ROLE_LOOKUP = 1.0  # seconds: the refusal is the answer; the role only words it


def certificate_user(cert_path: str | None) -> str | None:
    """The CN of a PEM client certificate: the etcd user its requests run as."""
    if cert_path is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError):
        return None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


async def own_roles(conn: EtcdConnection, user: str) -> list[str] | None:
    """The user's etcd roles, asked as that user; None when etcd does not say."""
    try:
        channel = await conn.ensure(time.monotonic() + _ROLE_LOOKUP)
        resp = await rpc.AuthStub(channel).UserGet(
            rpc.AuthUserGetRequest(name=user), timeout=_ROLE_LOOKUP
        )
    except Exception:  # best effort: the refusal is reported either way
        return None
    return [str(r) for r in resp.roles]


async def explain_denied(
    conn: EtcdConnection, err: PermissionDeniedError, touched: Sequence[str], *, write: bool
) -> PermissionDeniedError:
    user = certificate_user(conn.tls.cert_cert)
    roles = await own_roles(conn, user) if user else None
    role = access.role_of(roles) if roles is not None else None
    role_text = role or ("none" if roles is not None else None)
    key, needs = access.most_needed(touched, write=write)
    message = access.denied_message(user, role_text, key, write=write, needs=needs)
    return PermissionDeniedError(message, err.cause)

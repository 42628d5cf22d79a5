"""Users of the control plane: a client certificate (CN = user name) and an etcd user.

The key is made here and written 0600; it never travels. etcd maps the certificate's
CN to its user of that name (access.py), so the name is the identity: ``root`` and
``admin`` are taken (etcd's root user, every node's ``ha`` certificate), and a colon is
refused since ``node:<name>`` and ``etcd:<name>`` are the agents' and members' own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from controller.api.cluster import Cluster
from controller.bootstrap import pki
from controller.store import access
from controller.store.objects import Event, make_event

ADMIN_USER = "admin"  # CN of every node's admin client certificate (pki.issue_admin)
RESERVED = frozenset({access.ROOT, ADMIN_USER})
_NAME = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")


class UserError(ValueError):
    """A user name or role that cannot be used, or a change that would lock admins out."""


def check_user_name(name: str) -> str:
    if name in RESERVED:
        why = "etcd's root user" if name == access.ROOT else "every node's own ha certificate"
        raise UserError(f"user name {name!r} is reserved ({why}); choose another")
    if not _NAME.match(name):
        raise UserError(
            f"user name {name!r}: use 1-63 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter (it becomes the certificate's CN and the etcd user)"
        )
    return name


def check_role(role: str) -> access.Role:
    for r in access.ROLES:
        if r == role:
            return r
    raise UserError(f"role {role!r}: choose one of {', '.join(access.ROLES)}")


def agent_user(node: str) -> str:
    """The etcd user a node's agent is: its client certificate's CN (pki.issue_node_client)."""
    return f"node:{node}"


def root_users(nodes: list[str]) -> list[str]:
    """Who must hold etcd's root role before auth is enabled: every node's agent (leases,
    elections, membership through the join endpoint) and the nodes' `ha` certificate."""
    return [ADMIN_USER, *(agent_user(n) for n in sorted(nodes))]


def check_not_locked_out(caller: str | None, caller_roles: list[str] | None) -> None:
    """Refuse to enable auth when the identity running the command would not be root."""
    if caller is None:
        raise UserError(
            "this client config presents no client certificate: with auth enabled etcd could "
            "not tell who it is; use the admin client config `ha cluster init` wrote"
        )
    if caller_roles is None or access.ROOT not in caller_roles:
        raise UserError(
            f"refusing to enable RBAC: this command runs as etcd user {caller!r}, which would "
            "not have the admin (root) role afterwards, so it could not undo it; run it with "
            f"an admin client config (CN {ADMIN_USER!r}), or `ha cluster user add {caller} "
            "--role admin` first"
        )


@dataclass(frozen=True)
class UserFiles:
    cert: Path
    key: Path
    ca: Path
    config: Path


def write_user_files(
    ca: pki.CA, name: str, directory: Path, endpoints: list[str], cluster: str
) -> UserFiles:
    """Issue the user's certificate with a key made here, and a client config using them."""
    directory = directory.resolve()
    files = UserFiles(
        cert=directory / f"{name}.crt",
        key=directory / f"{name}.key",
        ca=directory / "ca.crt",
        config=directory / f"{name}.yaml",
    )
    key = pki.new_key()
    cert = pki.issue(ca, key.public_key(), name, server=False, client=True)
    pki.write_pair(str(files.cert), str(files.key), cert, key)
    pki.write_public(files.ca, pki.cert_pem(ca.cert))
    config = {
        "endpoints": endpoints,
        "cluster": cluster,
        "tls": {"ca": str(files.ca), "cert": str(files.cert), "key": str(files.key)},
    }
    pki.write_private(files.config, yaml.safe_dump(config, sort_keys=False).encode())
    return files


# -- events (docs/events.md), on the Cluster object --------------------------------------


def user_added(cluster: str, name: str, role: str, by: str, *, new: bool) -> Event:
    what = "added with role" if new else "given role"
    return make_event(Cluster.KIND, cluster, "UserAdded", f"user {name} {what} {role} by {by}")


def user_deleted(cluster: str, name: str, by: str) -> Event:
    message = (
        f"user {name} deleted by {by}; its certificate stays valid until it expires but "
        "now maps to no etcd user"
    )
    return make_event(Cluster.KIND, cluster, "UserDeleted", message)


def rbac_changed(cluster: str, enabled: bool, by: str, detail: str = "") -> Event:
    reason = "RbacEnabled" if enabled else "RbacDisabled"
    state = "enabled" if enabled else "disabled"
    extra = f" ({detail})" if detail else ""
    return make_event(Cluster.KIND, cluster, reason, f"control-plane RBAC {state} by {by}{extra}")

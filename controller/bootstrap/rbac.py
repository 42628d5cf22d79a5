"""Control-plane RBAC: turning etcd's auth on and off, and managing its users.

Enforcement is etcd's own (docs/decisions.md, "Control-plane RBAC"); this module only
sets it up so that the cluster keeps working: every agent and the nodes' `ha`
certificate get etcd's root role before ``auth enable``, and enable refuses to run as an
identity that would not be root afterwards (it could not turn auth off again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.api.cluster import Cluster
from controller.bootstrap import pki
from controller.bootstrap.etcd_auth import EtcdAuth
from controller.bootstrap.users import (
    UserFiles,
    agent_user,
    check_not_locked_out,
    check_role,
    check_user_name,
    rbac_changed,
    root_users,
    user_added,
    user_deleted,
    write_user_files,
)
from controller.store import access
from controller.store.client_config import ClientConfig
from controller.store.denied import certificate_user
from controller.store.etcd_channel import TLSFiles
from controller.store.objects import Event, ObjectStore


def _auth(config: ClientConfig) -> EtcdAuth:
    tls = TLSFiles(config.tls.ca, config.tls.key, config.tls.cert)
    return EtcdAuth(list(config.endpoints), tls, config.timeout)


def caller(config: ClientConfig) -> str | None:
    """The etcd user this client config's requests run as (its certificate's CN)."""
    return certificate_user(config.tls.cert)


async def _record(config: ClientConfig, event: Event) -> None:
    async with config.open_store() as store:
        await ObjectStore(store).commit_with_events([], [event])


async def _cluster(config: ClientConfig) -> tuple[str, list[str]]:
    """The Cluster object's name (events go on it) and its nodes."""
    async with config.open_store() as store:
        found, _ = await ObjectStore(store).list_objects([Cluster.KIND])
    if not found or not isinstance(found[0].obj, Cluster):
        return config.cluster, []
    obj = found[0].obj
    return obj.name, [n.name for n in obj.spec.nodes]


async def enable(config: ClientConfig) -> list[str]:
    """Create the roles and the root users, check the caller is root, `auth enable`.

    Returns the users given the root role. Safe to run again (each step is idempotent).
    """
    me = caller(config)
    name, nodes = await _cluster(config)
    async with _auth(config) as auth:
        await auth.ensure_roles(config.cluster)
        roots = root_users(nodes)
        for user in roots:
            await auth.ensure_user(user)
            await auth.set_role_root(user)
        check_not_locked_out(me, await auth.user_roles(me) if me else None)
        await auth.enable()
    who = ", ".join(roots)
    await _record(config, rbac_changed(name, True, me or "?", f"root: {who}"))
    return roots


async def disable(config: ClientConfig) -> None:
    """`auth disable`: every certificate signed by the CA may do anything again. The users
    and roles stay, so enabling again restores the same grants."""
    me = caller(config)
    name, _ = await _cluster(config)
    async with _auth(config) as auth:
        await auth.disable()
    await _record(config, rbac_changed(name, False, me or "?"))


async def ensure_agent(
    endpoints: Sequence[str], tls: TLSFiles, node: str, timeout: float = 5.0
) -> bool:
    """Give a joining node's agent the root role once RBAC has been set up (its roles
    exist): a node added to the Cluster spec after `rbac enable` would otherwise start
    an agent etcd refuses. Whether it did anything."""
    async with EtcdAuth(endpoints, tls, timeout) as auth:
        if access.ETCD_ROLE["operator"] not in await auth.roles():
            return False
        await auth.ensure_user(agent_user(node))
        await auth.set_role_root(agent_user(node))
    return True


@dataclass(frozen=True)
class AddedUser:
    name: str
    role: access.Role
    new: bool
    files: UserFiles | None


async def add_user(
    config: ClientConfig,
    pki_paths: Callable[[], pki.PKIPaths],
    name: str,
    role: str,
    out: Path | None,
) -> AddedUser:
    """Create (or re-role) a user; a new user, or one given -o, gets certificate files.

    pki_paths is asked only when a certificate is issued: changing a role needs no CA key.
    """
    check_user_name(name)
    wanted = check_role(role)
    ca = pki.load_ca(pki_paths()) if out is not None else None
    cluster, _ = await _cluster(config)
    async with _auth(config) as auth:
        await auth.ensure_roles(config.cluster)
        new = await auth.user_roles(name) is None
        if new and ca is None:
            ca = pki.load_ca(pki_paths())
            out = Path(f"vigil-user-{name}")
        files = None
        if ca is not None and out is not None:
            # The files first: a user in etcd without a certificate is of no use to anyone.
            files = write_user_files(ca, name, out, list(config.endpoints), config.cluster)
        await auth.ensure_user(name)
        await auth.set_role(name, wanted)
    await _record(config, user_added(cluster, name, wanted, caller(config) or "?", new=new))
    return AddedUser(name, wanted, new, files)


async def delete_user(config: ClientConfig, name: str) -> bool:
    check_user_name(name)
    cluster, _ = await _cluster(config)
    async with _auth(config) as auth:
        deleted = await auth.delete_user(name)
    if deleted:
        await _record(config, user_deleted(cluster, name, caller(config) or "?"))
    return deleted


@dataclass(frozen=True)
class UserRow:
    name: str
    role: str
    etcd_roles: tuple[str, ...]


async def list_users(config: ClientConfig) -> list[UserRow]:
    rows = []
    async with _auth(config) as auth:
        for user in await auth.users():
            roles = await auth.user_roles(user) or []
            role = access.role_of(roles)
            rows.append(UserRow(user, role or "-", tuple(roles)))
    return rows

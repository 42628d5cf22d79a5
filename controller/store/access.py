"""Who may touch which keys: Vigil's three roles as etcd key-range permissions (pure).

etcd's own auth enforces them (docs/decisions.md, "Control-plane RBAC"): with client
certificate auth on and ``auth enable``, etcd takes a gRPC request's user from the
client certificate's CN and checks the user's roles' key ranges on every request.

- viewer: read the cluster's prefix ``/vigil/<cluster>/``.
- operator: that, plus read-write on exactly what ``ha move``, ``standby``/``unstandby``
  and ``cleanup`` write: ResourceGroup and Node specs, the apply guard key, events and
  failure counts.
- admin: etcd's ``root`` role (membership, auth, everything); agents have it too.

The key layout comes from keys.py, so a key moved there moves its permission here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from controller.store import keys

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
ROOT = "root"  # etcd's built-in role (and user) with every permission
# The etcd role behind each Vigil role.
ETCD_ROLE: dict[Role, str] = {
    "viewer": "vigil-viewer",
    "operator": "vigil-operator",
    "admin": ROOT,
}
READ, WRITE, READWRITE = 0, 1, 2  # etcd's authpb.Permission.Type values


@dataclass(frozen=True)
class Grant:
    """A read-write grant relative to the cluster prefix: one key, or every key under it."""

    key: str
    prefix: bool

    def covers(self, key: str) -> bool:
        return key.startswith(self.key) if self.prefix else key == self.key


# What the operator's commands write (ops_cmd.py through apply/run.py): the spec, the
# guard every spec write moves (compare-and-swap), the events recorded with it, and
# the failure counts `ha cleanup` deletes. The same keys are what `ha apply` writes for
# a ResourceGroup or Node, so an operator may also apply those two kinds (and write
# events of any object): etcd's ranges cannot tell a move from an apply.
OPERATOR_WRITES: tuple[Grant, ...] = (
    Grant(keys.spec_prefix("ResourceGroup"), prefix=True),
    Grant(keys.spec_prefix("Node"), prefix=True),
    Grant(keys.SPECS_GUARD, prefix=False),
    Grant(keys.EVENTS, prefix=True),
    Grant(keys.FAILURES, prefix=True),
)


@dataclass(frozen=True)
class Permission:
    """One etcd permission: [key, range_end) (range_end empty: the key alone)."""

    perm_type: int
    key: bytes
    range_end: bytes


def permissions(cluster: str, role: Role) -> list[Permission]:
    """The permissions of the etcd role behind a Vigil role; admin (root) needs none."""
    if role == "admin":
        return []
    base = keys.cluster_prefix(cluster).encode()
    perms = [Permission(READ, base, keys.prefix_range_end(base))]
    if role == "operator":
        for g in OPERATOR_WRITES:
            full = base + g.key.encode()
            end = keys.prefix_range_end(full) if g.prefix else b""
            perms.append(Permission(READWRITE, full, end))
    return perms


def needed_role(key: str, *, write: bool) -> Role:
    """The least role that may read (or write) a key relative to the cluster prefix."""
    if not write:
        return "viewer"
    if any(g.covers(key) for g in OPERATOR_WRITES):
        return "operator"
    return "admin"


def most_needed(touched: Sequence[str], *, write: bool) -> tuple[str | None, Role]:
    """Of the keys one request touched, the one needing the most: the likely refusal."""
    if not touched:
        return None, "admin" if write else "viewer"
    rank = {r: i for i, r in enumerate(ROLES)}
    key = max(touched, key=lambda k: rank[needed_role(k, write=write)])
    return key, needed_role(key, write=write)


def role_of(etcd_roles: Iterable[str]) -> Role | None:
    """The Vigil role a set of etcd roles amounts to (the highest); None: no Vigil role."""
    found = set(etcd_roles)
    for role in reversed(ROLES):
        if ETCD_ROLE[role] in found:
            return role
    return None


def denied_message(
    user: str | None, role: str | None, key: str | None, *, write: bool, needs: Role
) -> str:
    """What `ha` says when etcd refuses a request for want of permission."""
    who = f"user {user}" if user else "this client certificate's user"
    as_role = f" (role {role})" if role else ""
    verb = "write" if write else "read"
    what = key if key else "this part of the store"
    if user is not None and (user == "admin" or user.startswith("node:")):
        # A node's own identity (agent or `ha`): not a user `ha cluster user add` makes.
        grant = "`ha cluster rbac enable` (run again, it makes every node's identity root)"
    elif user:
        grant = f"`ha cluster user add {user} --role {needs}`"
    else:
        grant = f"the {needs} role"
    return (
        f"permission denied: {who}{as_role} may not {verb} {what}; "
        f"an admin can grant it with {grant}"
    )

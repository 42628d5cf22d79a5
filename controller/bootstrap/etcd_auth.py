"""etcd's auth API (users, roles, auth enable/disable) over the store's TLS channel.

Users are made without a password (etcd 3.4's UserAddOptions.no_password): they can only
be the CN of a client certificate signed by the cluster CA, never log in by password.
Every call here needs etcd's root role once auth is enabled.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self

from aetcd import rpc

from controller.store import access
from controller.store.denied import certificate_user
from controller.store.errors import PermissionDeniedError, StoreError
from controller.store.etcd_channel import EtcdConnection, TLSFiles, translate


def _already(e: Exception, what: str) -> bool:
    """etcd's "already exists" / "already granted" answers: the state is as wanted."""
    return isinstance(e, rpc.AioRpcError) and what in (e.details() or "")


class EtcdAuth:
    def __init__(self, endpoints: Sequence[str], tls: TLSFiles, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._conn = EtcdConnection(list(endpoints), timeout, tls)

    async def _call(self, what: str, fn: Callable[[Any], Awaitable[Any]],
                    tolerate: str = "") -> Any:  # fmt: skip
        try:
            channel = await self._conn.ensure(time.monotonic() + self.timeout)
            return await fn(rpc.AuthStub(channel))
        except Exception as e:
            if tolerate and _already(e, tolerate):
                return None
            err = translate(e, self._conn, write=True)
            if isinstance(err, PermissionDeniedError):
                user = certificate_user(self._conn.tls.cert_cert)
                who = f"user {user}" if user else "this client certificate's user"
                raise PermissionDeniedError(
                    f"permission denied: {who} may not {what}: only the admin role may",
                    err.cause,
                ) from None
            raise StoreError(f"etcd {what} failed: {err}") from None

    # -- users ---------------------------------------------------------------------------

    async def users(self) -> list[str]:
        resp = await self._call(
            "user list", lambda s: s.UserList(rpc.AuthUserListRequest(), timeout=self.timeout)
        )
        return sorted(str(u) for u in resp.users)

    async def user_roles(self, name: str) -> list[str] | None:
        """The user's etcd roles; None if there is no such user."""
        try:
            channel = await self._conn.ensure(time.monotonic() + self.timeout)
            resp = await rpc.AuthStub(channel).UserGet(
                rpc.AuthUserGetRequest(name=name), timeout=self.timeout
            )
        except Exception as e:
            if _already(e, "user name not found"):
                return None
            raise StoreError(f"etcd user get {name}: {translate(e, self._conn)}") from None
        return sorted(str(r) for r in resp.roles)

    async def ensure_user(self, name: str) -> bool:
        """Create a password-less user; False if it existed already."""
        req = rpc.AuthUserAddRequest(name=name, options=rpc.UserAddOptions(no_password=True))
        resp = await self._call(
            f"user add {name}",
            lambda s: s.UserAdd(req, timeout=self.timeout),
            tolerate="user name already exists",
        )
        return resp is not None

    async def grant(self, user: str, role: str) -> None:
        req = rpc.AuthUserGrantRoleRequest(user=user, role=role)
        await self._call(
            f"grant role {role} to {user}", lambda s: s.UserGrantRole(req, timeout=self.timeout)
        )

    async def revoke(self, user: str, role: str) -> None:
        req = rpc.AuthUserRevokeRoleRequest(name=user, role=role)
        await self._call(
            f"revoke role {role} from {user}",
            lambda s: s.UserRevokeRole(req, timeout=self.timeout),
            tolerate="role is not granted",
        )

    async def set_role(self, user: str, role: access.Role) -> None:
        """Give the user exactly one Vigil role (its other Vigil roles revoked)."""
        wanted = access.ETCD_ROLE[role]
        current = await self.user_roles(user) or []
        if wanted not in current:
            await self.grant(user, wanted)
        for other in access.ETCD_ROLE.values():
            if other != wanted and other in current:
                await self.revoke(user, other)

    async def delete_user(self, name: str) -> bool:
        """False if there was no such user."""
        req = rpc.AuthUserDeleteRequest(name=name)
        try:
            channel = await self._conn.ensure(time.monotonic() + self.timeout)
            await rpc.AuthStub(channel).UserDelete(req, timeout=self.timeout)
        except Exception as e:
            if _already(e, "user name not found"):
                return False
            raise StoreError(f"etcd user delete {name}: {translate(e, self._conn)}") from None
        return True

    # -- roles ---------------------------------------------------------------------------

    async def roles(self) -> list[str]:
        resp = await self._call(
            "role list", lambda s: s.RoleList(rpc.AuthRoleListRequest(), timeout=self.timeout)
        )
        return sorted(str(r) for r in resp.roles)

    async def ensure_roles(self, cluster: str) -> None:
        """Create vigil-viewer and vigil-operator with their key ranges (access.py)."""
        for role in ("viewer", "operator"):
            name = access.ETCD_ROLE[role]
            await self._role_add(name)
            for p in access.permissions(cluster, role):
                perm = rpc.Permission(permType=p.perm_type, key=p.key, range_end=p.range_end)
                await self._grant_permission(
                    rpc.AuthRoleGrantPermissionRequest(name=name, perm=perm)
                )

    async def _role_add(self, name: str) -> None:
        req = rpc.AuthRoleAddRequest(name=name)
        await self._call(
            f"role add {name}",
            lambda s: s.RoleAdd(req, timeout=self.timeout),
            tolerate="role name already exists",
        )

    async def _grant_permission(self, req: Any) -> None:
        # Granting a range the role has already is a no-op in etcd: safe to repeat.
        await self._call(
            f"grant {req.name} its key range",
            lambda s: s.RoleGrantPermission(req, timeout=self.timeout),
        )

    # -- auth on / off -------------------------------------------------------------------

    async def enable(self) -> None:
        # etcd refuses `auth enable` without a `root` user holding the root role; no
        # password and no certificate with CN=root is ever issued, so nobody logs in as it.
        await self.ensure_user(access.ROOT)
        await self.set_role_root(access.ROOT)
        await self._call(
            "auth enable", lambda s: s.AuthEnable(rpc.AuthEnableRequest(), timeout=self.timeout)
        )

    async def set_role_root(self, user: str) -> None:
        if access.ROOT not in (await self.user_roles(user) or []):
            await self.grant(user, access.ROOT)

    async def disable(self) -> None:
        await self._call(
            "auth disable",
            lambda s: s.AuthDisable(rpc.AuthDisableRequest(), timeout=self.timeout),
        )

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

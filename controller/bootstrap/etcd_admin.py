"""etcd membership calls (member list/add/remove, status) over the store's TLS channel."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aetcd import rpc

from controller.store.errors import StoreError
from controller.store.etcd_channel import EtcdConnection, TLSFiles, translate

# etcd's health gate for membership changes: members must be connected for 5 s.
SETTLE = 12.0
_NOT_APPLIED = ("unhealthy cluster", "re-configuration failed due to not enough started members")


@dataclass(frozen=True)
class MemberInfo:
    id: int
    name: str  # empty for a member that was added but has not started yet
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @property
    def started(self) -> bool:
        return bool(self.name)


@dataclass(frozen=True)
class MemberStatus:
    endpoint: str
    healthy: bool
    member_id: int = 0
    leader: int = 0
    version: str = ""
    db_size: int = 0
    raft_index: int = 0
    error: str = ""


def _member(m: Any) -> MemberInfo:
    return MemberInfo(
        int(m.ID), str(m.name), tuple(m.peerURLs), tuple(m.clientURLs), bool(m.isLearner)
    )


class EtcdAdmin:
    """Cluster-wide membership operations through any reachable member."""

    def __init__(self, endpoints: Sequence[str], tls: TLSFiles, timeout: float = 5.0) -> None:
        self.tls = tls
        self.timeout = timeout
        self._conn = EtcdConnection(list(endpoints), timeout, tls)

    @property
    def endpoints(self) -> list[str]:
        return list(self._conn.urls)

    async def _cluster(self) -> Any:
        channel = await self._conn.ensure(time.monotonic() + self.timeout)
        return rpc.ClusterStub(channel)

    async def members(self) -> list[MemberInfo]:
        try:
            stub = await self._cluster()
            resp = await stub.MemberList(rpc.MemberListRequest(), timeout=self.timeout)
        except Exception as e:
            raise translate(e, self._conn) from None
        return [_member(m) for m in resp.members]

    async def _change(self, what: str, request: Callable[[Any], Awaitable[Any]],
                      settle: float) -> Any:  # fmt: skip
        """Run a membership change, retrying while etcd's health gate refuses it.

        etcd refuses changes ("unhealthy cluster") until every member has been connected
        for 5 s, e.g. right after a join; that refusal changes nothing, so it is retried
        for up to settle seconds.
        """
        deadline = time.monotonic() + settle
        while True:
            try:
                return await request(await self._cluster())
            except Exception as e:
                refused = isinstance(e, rpc.AioRpcError) and any(
                    m in (e.details() or "") for m in _NOT_APPLIED
                )
                if refused and time.monotonic() < deadline:
                    await asyncio.sleep(0.25)
                    continue
                err = translate(e, self._conn, write=True, unsure=not refused)
                raise StoreError(f"etcd {what} failed: {err}") from None

    async def add(
        self, peer_url: str, *, settle: float = SETTLE
    ) -> tuple[MemberInfo, list[MemberInfo]]:
        """member add: returns the new member and the member list that includes it."""
        req = rpc.MemberAddRequest(peerURLs=[peer_url])
        resp = await self._change(
            f"member add {peer_url}", lambda stub: stub.MemberAdd(req, timeout=self.timeout),
            settle,
        )  # fmt: skip
        return _member(resp.member), [_member(m) for m in resp.members]

    async def remove(self, member_id: int, *, settle: float = SETTLE) -> None:
        req = rpc.MemberRemoveRequest(ID=member_id)
        await self._change(
            f"member remove {member_id:x}",
            lambda stub: stub.MemberRemove(req, timeout=self.timeout),
            settle,
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


async def member_status(endpoint: str, tls: TLSFiles, within: float = 2.0) -> MemberStatus:
    """Maintenance.Status of one member, asked directly (not through another member)."""
    conn = EtcdConnection([endpoint], within, tls)
    try:
        channel = await conn.ensure(time.monotonic() + within)
        resp = await rpc.MaintenanceStub(channel).Status(rpc.StatusRequest(), timeout=within)
    except Exception as e:
        return MemberStatus(endpoint, False, error=str(translate(e, conn)))
    finally:
        await conn.close()
    errors = "; ".join(resp.errors)
    return MemberStatus(
        endpoint,
        healthy=resp.leader != 0 and not errors,
        member_id=int(resp.header.member_id),
        leader=int(resp.leader),
        version=str(resp.version),
        db_size=int(resp.dbSize),
        raft_index=int(resp.raftIndex),
        error=errors or ("no leader" if resp.leader == 0 else ""),
    )


async def statuses(members: Sequence[MemberInfo], tls: TLSFiles) -> dict[int, MemberStatus]:
    async def one(m: MemberInfo) -> tuple[int, MemberStatus]:
        if not m.client_urls:
            return m.id, MemberStatus("", False, error="not started yet")
        return m.id, await member_status(m.client_urls[0], tls)

    return dict(await asyncio.gather(*(one(m) for m in members)))

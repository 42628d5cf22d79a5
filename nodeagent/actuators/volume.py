"""`volume`: this node's replica of a ReplicatedVolume as Primary while its group runs here.

The replica itself runs all the time (nodeagent/volumes/supervisor.py); this actuator only
promotes and demotes it through its control socket. Running = Primary with UpToDate data;
stopped = Secondary (or not running at all, which serves nothing either).

A promote the replica refuses for a reason that passes (its peer still counted Primary
until the replication link times out after a power loss; a peer still demoting) is asked
again until the start timeout; a refusal that will not pass (Outdated or Inconsistent data,
an outdate record in the store naming this node, a split brain) fails at once with the
replica's own words: promoting such data is what must never happen, so there is no force.
"""

from __future__ import annotations

import asyncio
import logging

from controller.api.group import Resource
from nodeagent.actuators.base import Actuator, ActuatorContext, register
from nodeagent.actuators.volume_paths import control_socket
from nodeagent.observation import Observation
from nodeagent.volumes.control import ReplicaUnreachable, request

log = logging.getLogger(__name__)
RETRY = 0.1
# Refusals that end by themselves: the peer's role is last known Primary until the link
# times out; a SyncTarget finishes its resync.
_PASSING = ("the connected peer is Primary",)


class VolumeActuator(Actuator):
    def __init__(self, volume: str, ctx: ActuatorContext) -> None:
        super().__init__(ctx)
        self.volume = volume
        self.control = control_socket(ctx.run_dir, volume)

    @property
    def where(self) -> str:
        return f"replica of volume {self.volume}"

    async def _peer_is_dead(self) -> bool:
        if self.ctx.peer_dead is None:
            return False
        answer = await self._ask("status")
        status = answer.get("status")
        peer = status.get("peer_id") if isinstance(status, dict) else None
        return isinstance(peer, str) and bool(peer) and self.ctx.peer_dead(peer)

    async def _ask(self, cmd: str, **extra: object) -> dict[str, object]:
        try:
            return await request(self.control, cmd, timeout=5.0, **extra)
        except ReplicaUnreachable as exc:
            raise self.error(
                f"the replica does not answer ({exc})",
                "check that the agent's volume supervisor runs it: `ha describe vol "
                f"{self.volume}` shows its last error",
            ) from None

    async def _observe(self) -> Observation:
        try:
            answer = await request(self.control, "status", timeout=2.0)
        except ReplicaUnreachable as exc:
            return Observation.stopped(f"replica not running here ({exc})")
        status = answer.get("status")
        if not answer.get("ok") or not isinstance(status, dict):
            return Observation.unknown(f"replica status refused: {answer.get('error')}")
        role, disk, conn = status.get("role"), status.get("disk"), status.get("connection")
        detail = f"{role}, {disk}, {conn}"
        if role == "Primary":
            if disk == "UpToDate":
                return Observation.running(detail)
            return Observation.failed(f"Primary without UpToDate data: {detail}")
        return Observation.stopped(detail)

    async def _start(self) -> None:
        while True:
            # No wait in the replica for a peer still Primary: this loop retries, and
            # after a power loss it must reach the peer_lost promotion at once.
            answer = await self._ask("promote", peer_wait=0)
            if answer.get("ok"):
                return
            why = str(answer.get("error"))
            if why.startswith(_PASSING) and await self._peer_is_dead():
                log.info("volume %s: promoting now, its peer is dead", self.volume)
                # The peer's link would time out in a second or two; the membership
                # already knows it is dead (and, with fencing on, the leader placed the
                # group here only after fencing it).
                answer = await self._ask("promote", peer_lost=True)
                if answer.get("ok"):
                    return
                why = str(answer.get("error"))
            if not why.startswith(_PASSING):
                raise self.error(
                    f"promote refused: {why}",
                    "this replica's data must not be promoted; run the group where the "
                    f"volume is UpToDate (`ha describe vol {self.volume}`)",
                )
            await asyncio.sleep(RETRY)

    async def _stop(self) -> None:
        while True:
            answer = await self._ask("demote")
            if answer.get("ok"):
                return
            # Refused while a client still has the device open: the filesystem's stop runs
            # before this one, and its detach may still be finishing.
            await asyncio.sleep(RETRY)


@register("volume")
def volume_actuator(resource: Resource, ctx: ActuatorContext) -> Actuator:
    assert resource.volume is not None
    return VolumeActuator(resource.volume.name, ctx)

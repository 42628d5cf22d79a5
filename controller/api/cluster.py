"""The ``Cluster`` kind: members, heartbeat links, timings, quorum and fencing policy (ha.cf)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from controller.api.fields import AbsPath, InterfaceName, IPAddress, Name, Port
from controller.api.meta import ApiModel, Object, Status, one_of
from controller.api.units import Duration


class UdpLink(ApiModel):
    interface: InterfaceName | None = Field(
        default=None,
        description="Interface to send heartbeats from (ha.cf `ucast eth1 ...`); any when unset.",
    )
    peer: IPAddress = Field(description="Address of the peer's heartbeat endpoint on this link.")
    port: Port = Field(default=694, description="UDP port, 694 as Heartbeat's udpport.")


class SerialLink(ApiModel):
    device: AbsPath = Field(description="Serial device of the null-modem cable, e.g. /dev/ttyS0.")
    baud: Literal[9600, 19200, 38400, 57600, 115200] = Field(
        default=115200, description="Line speed in baud (ha.cf `baud`)."
    )


class HeartbeatLink(ApiModel):
    model_config = one_of("udp", "serial")

    udp: UdpLink | None = Field(default=None, description="A UDP unicast heartbeat path.")
    serial: SerialLink | None = Field(default=None, description="A serial-line heartbeat path.")

    @model_validator(mode="after")
    def _one_medium(self) -> HeartbeatLink:
        given = [name for name in ("udp", "serial") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "a heartbeat link needs exactly one of udp or serial"
                + (f"; found {', '.join(given)}" if given else "")
            )
        return self


class ClusterNode(ApiModel):
    name: Name = Field(description="The node's name; its agent runs with this name (hostname).")
    address: IPAddress = Field(
        description="The node's cluster address: the store (etcd) and agents talk over it."
    )
    role: Literal["server", "witness"] = Field(
        default="server",
        description=(
            "server runs resources; witness only votes (store member and heartbeats), "
            "to give two servers a majority."
        ),
    )
    heartbeat: list[HeartbeatLink] = Field(
        default_factory=list,
        description="Extra heartbeat paths besides the cluster address (dedicated NIC, serial).",
    )


class Timing(ApiModel):
    keepalive: Duration = Field(
        default=timedelta(milliseconds=200), description="Interval between heartbeats."
    )
    warntime: Duration = Field(
        default=timedelta(milliseconds=500),
        description="Silence after which a late heartbeat is logged as a warning.",
    )
    # 900 ms, not 1 s: a power loss then costs under a second of service in the median
    # (tests/bench/failover.py), still with four heartbeats of slack before a false alarm.
    deadtime: Duration = Field(
        default=timedelta(milliseconds=900),
        description="Silence after which a node is declared dead and its groups recovered.",
    )
    initdead: Duration = Field(
        default=timedelta(seconds=30),
        description="Deadtime right after an agent starts, while its peers boot.",
    )


class Quorum(ApiModel):
    mode: Literal["majority", "two-node"] = Field(
        default="majority",
        description=(
            "majority: a partition acts only with more than half of the members; two-node: "
            "two servers, the survivor fences its peer and carries on alone."
        ),
    )


class FencingPolicy(ApiModel):
    enabled: bool = Field(
        default=True,
        description=(
            "Recover a lost node's groups only after it is fenced. Turning this off risks "
            "a resource running twice; every node then needs no FenceDevice."
        ),
    )
    action: Literal["reboot", "off"] = Field(
        default="reboot", description="What fencing does to the lost node's power."
    )
    timeout: Duration = Field(
        default=timedelta(seconds=60), description="How long one fencing attempt may take."
    )


class ClusterSpec(ApiModel):
    nodes: list[ClusterNode] = Field(
        min_length=1, description="The members of the cluster (ha.cf `node` lines)."
    )
    timing: Timing = Field(
        default_factory=Timing, description="Heartbeat timings, as Heartbeat's ha.cf."
    )
    quorum: Quorum = Field(default_factory=Quorum, description="How partitions decide who acts.")
    fencing: FencingPolicy = Field(
        default_factory=FencingPolicy, description="Fencing (STONITH) policy."
    )


class ClusterStatus(Status):
    leader: str | None = Field(default=None, description="Node whose controller leads now.")


class Cluster(Object):
    KIND: ClassVar[str] = "Cluster"
    PLURAL: ClassVar[str] = "clusters"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()

    kind: Literal["Cluster"] = Field(description="Cluster: the cluster's members and policies.")
    spec: ClusterSpec = Field(description="The desired cluster configuration.")
    status: ClusterStatus = Field(
        default_factory=ClusterStatus, description="Observed state, written by Vigil."
    )

"""The ``Node`` kind: per-node operator intent (standby) and what its agent reports."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from controller.api.meta import ApiModel, Object, Status, Timestamp


class NodeSpec(ApiModel):
    standby: bool = Field(
        default=False,
        description="Drain the node: its groups move away and none are placed on it (crm_standby).",
    )


class LinkStatus(ApiModel):
    name: str = Field(
        description=(
            "Heartbeat link as the agent names it: cluster (the nodes' addresses), "
            "udp<i>-<interface> (an extra udp link), serial0, serial1, ... (serial links, in "
            "the Cluster spec's order)."
        )
    )
    peer: str = Field(description="Peer node at the other end.")
    up: bool = Field(description="Whether heartbeats arrive within deadtime.")
    last_seen: Timestamp | None = Field(
        default=None, description="For a link that is down: when it was last heard."
    )


class NodeStatus(Status):
    phase: Literal["Ready", "NotReady", "Lost", "Fenced", "Unknown"] = Field(
        default="Unknown", description="Liveness as the cluster sees it."
    )
    agent_version: str | None = Field(default=None, description="Version of the node's agent.")
    heartbeat_time: Timestamp | None = Field(
        default=None, description="When the agent last renewed its liveness."
    )
    links: list[LinkStatus] = Field(default_factory=list, description="Heartbeat link states.")


class Node(Object):
    KIND: ClassVar[str] = "Node"
    PLURAL: ClassVar[str] = "nodes"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("no",)

    kind: Literal["Node"] = Field(description="Node: a member's operator settings and state.")
    spec: NodeSpec = Field(default_factory=NodeSpec, description="Operator intent for the node.")
    status: NodeStatus = Field(
        default_factory=NodeStatus, description="Observed state, written by the node's agent."
    )

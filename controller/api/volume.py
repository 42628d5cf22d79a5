"""The ``ReplicatedVolume`` kind: a block device mirrored by blockrepl on two nodes (drbd.conf)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from controller.api.fields import AbsPath, HostPort, Name
from controller.api.meta import ApiModel, Object, Status, Timestamp
from controller.api.splitbrain import AFTER_SB_0PRI, DISCARD_NODE
from controller.api.units import Duration, Size


def _check_after_sb_0pri(value: str) -> str:
    if value in AFTER_SB_0PRI or value.startswith(DISCARD_NODE):
        return value
    raise ValueError(
        f"unknown policy {value!r}: expected one of {', '.join(AFTER_SB_0PRI)} "
        f"or {DISCARD_NODE}<node>"
    )


AfterSB0Pri = Annotated[
    str,
    AfterValidator(_check_after_sb_0pri),
    WithJsonSchema(
        {
            "type": "string",
            "anyOf": [
                {"enum": list(AFTER_SB_0PRI)},
                {"pattern": f"^{DISCARD_NODE}[a-z0-9]"},
            ],
        }
    ),
]


class Replica(ApiModel):
    node: Name = Field(description="Node holding this replica.")
    disk: AbsPath = Field(description="Backing block device or file, e.g. /dev/sdb1.")
    address: HostPort = Field(
        description="host:port the replica listens on for its peer (replication link)."
    )
    meta_disk: Literal["internal"] | AbsPath = Field(
        default="internal",
        description="Where metadata lives: internal (end of the disk) or a separate device.",
    )


class SplitBrainPolicy(ApiModel):
    after_sb_0pri: AfterSB0Pri = Field(
        default="disconnect",
        alias="afterSB0Pri",
        description="Split-brain found while no side is Primary (DRBD after-sb-0pri).",
    )
    after_sb_1pri: Literal[
        "disconnect", "consensus", "violently-as0p", "discard-secondary", "call-pri-lost-after-sb"
    ] = Field(
        default="disconnect",
        alias="afterSB1Pri",
        description="Split-brain found while one side is Primary (DRBD after-sb-1pri).",
    )
    after_sb_2pri: Literal["disconnect", "violently-as0p", "call-pri-lost-after-sb"] = Field(
        default="disconnect",
        alias="afterSB2Pri",
        description="Split-brain found while both sides are Primary (DRBD after-sb-2pri).",
    )


class NetworkSettings(ApiModel):
    keepalive: Duration = Field(
        default=timedelta(milliseconds=500), description="Ping interval on the replication link."
    )
    timeout: Duration = Field(
        default=timedelta(seconds=2),
        description="Silence after which the peer is declared gone (writes go to the bitmap).",
    )
    tls: bool = Field(default=False, description="Encrypt the replication link with TLS.")


class ReplicatedVolumeSpec(ApiModel):
    protocol: Literal["A", "B", "C"] = Field(
        default="C",
        description=(
            "When a write is acknowledged: A local disk + sent, B local disk + peer received, "
            "C local disk + peer disk (no acknowledged write is ever lost)."
        ),
    )
    size: Size | None = Field(
        default=None,
        description="Usable size; by default the smaller disk minus the metadata area.",
    )
    replicas: list[Replica] = Field(
        min_length=2,
        max_length=2,
        description="The two replicas, one per node.",
    )
    secret_file: AbsPath | None = Field(
        default=None,
        description=(
            "File with the shared secret that authenticates the peers (cram-hmac); by "
            "default each node derives the volume's secret from the cluster key."
        ),
    )
    resync_rate: Size = Field(
        default=200 << 20, description="Maximum resync bandwidth per second, e.g. 200M."
    )
    checksum_resync: bool = Field(
        default=True,
        description="Skip resyncing blocks whose checksums already match (DRBD csums-alg).",
    )
    on_io_error: Literal["detach", "pass_on"] = Field(
        default="detach",
        alias="onIOError",
        description=(
            "On a local disk error: detach (go diskless, serve through the peer) or pass_on "
            "(report the error upward)."
        ),
    )
    outdate_peer: Literal["resource-only", "dont-care"] = Field(
        default="resource-only",
        description=(
            "resource-only: a Primary that loses its peer marks it Outdated in the store "
            "before it acknowledges another write, so outdated data is never promoted "
            "(DRBD's fencing resource-only; in Vigil, fencing means STONITH)."
        ),
    )
    split_brain: SplitBrainPolicy = Field(
        default_factory=SplitBrainPolicy,
        description="Automatic split-brain recovery; by default none (no data is discarded).",
    )
    network: NetworkSettings = Field(
        default_factory=NetworkSettings, description="Replication link settings."
    )


class SyncProgress(ApiModel):
    direction: Literal["SyncSource", "SyncTarget"] = Field(
        description="SyncSource sends the blocks its peer missed; SyncTarget receives them."
    )
    done_bytes: int = Field(ge=0, description="Bytes resynced so far.")
    total_bytes: int = Field(ge=0, description="Bytes this resync has to send.")
    percent: float = Field(ge=0, le=100, description="Progress in percent.")
    rate: float | None = Field(default=None, description="Recent speed in bytes per second.")
    eta_seconds: float | None = Field(default=None, description="Seconds left at the recent speed.")


class ReplicaStatus(ApiModel):
    node: str = Field(description="Node of the replica.")
    role: Literal["Primary", "Secondary", "Unknown"] = Field(
        default="Unknown", description="Role of the replica."
    )
    disk_state: Literal[
        "UpToDate", "Outdated", "Inconsistent", "Diskless", "Consistent", "Unknown"
    ] = Field(default="Unknown", description="Disk state, as DRBD's.")
    connection: str = Field(
        default="Unknown",
        description=(
            "Connection to the peer: StandAlone, Connecting, Connected, SyncSource, SyncTarget, "
            "SplitBrain, Refused; Unknown when the replica does not run."
        ),
    )
    peer_role: Literal["Primary", "Secondary"] | None = Field(
        default=None, description="The connected peer's role, as this replica sees it."
    )
    sync: SyncProgress | None = Field(default=None, description="The resync under way, if any.")
    out_of_sync_bytes: int = Field(
        default=0, ge=0, description="Bytes this replica knows differ from its peer (bitmap)."
    )
    split_brain: bool = Field(
        default=False,
        description="Both sides changed the data apart; nothing is resynced until resolved.",
    )
    last_error: str | None = Field(default=None, description="The replica's last error.")
    # Timestamp, not datetime: the strict models read no datetime from a JSON string, and
    # a status read back from the store is JSON (one bad entry hid every replica's).
    observed_at: Timestamp | None = Field(
        default=None, description="When the node that runs this replica last wrote this entry."
    )


class ReplicatedVolumeStatus(Status):
    replicas: list[ReplicaStatus] = Field(
        default_factory=list, description="State of each replica."
    )


class ReplicatedVolume(Object):
    KIND: ClassVar[str] = "ReplicatedVolume"
    PLURAL: ClassVar[str] = "replicatedvolumes"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("rv",)
    ALIASES: ClassVar[tuple[str, ...]] = ("volume", "volumes", "vol")

    kind: Literal["ReplicatedVolume"] = Field(
        description="ReplicatedVolume: a block device mirrored between two nodes."
    )
    spec: ReplicatedVolumeSpec = Field(description="The volume's replicas and replication policy.")
    status: ReplicatedVolumeStatus = Field(
        default_factory=ReplicatedVolumeStatus, description="Observed state, written by Vigil."
    )

"""The ``ResourceGroup`` kind: ordered resources that run together on one node (haresources)."""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from controller.api.fields import CIDR, AbsPath, Host, InterfaceName, Name, Port
from controller.api.meta import ApiModel, Object, Status, Timestamp, one_of
from controller.api.units import Duration, format_duration

VOLUME_DEVICE_PREFIX = "volume:"
SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGKILL")


def _exactly_one(model: ApiModel, names: tuple[str, ...], what: str) -> None:
    given = [name for name in names if getattr(model, name) is not None]
    if len(given) != 1:
        found = f"; found {', '.join(given)}" if given else ""
        raise ValueError(f"{what} needs exactly one of {', '.join(names)}{found}")


NETWORK_FS_TYPES = ("nfs", "nfs4", "glusterfs", "cifs")
# host:/export (nfs, glusterfs: host:/volume or host:volume) and //host/share (cifs).
_NETWORK_DEVICE = re.compile(r"^(//[A-Za-z0-9_.:\[\]-]+/\S+|[A-Za-z0-9_.\[\]-]+:\S+)$")


def is_network_device(value: str) -> bool:
    """host:/export or //host/share: a network filesystem's source, mounted without attach."""
    return not value.startswith(VOLUME_DEVICE_PREFIX) and bool(_NETWORK_DEVICE.match(value))


def _check_device(value: str) -> str:
    if value.startswith(VOLUME_DEVICE_PREFIX):
        name = value[len(VOLUME_DEVICE_PREFIX) :]
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name):
            raise ValueError(f"invalid volume reference {value!r}: expected volume:<name>")
        return value
    if is_network_device(value):
        return value
    if not value.startswith("/") or value.startswith("//"):
        raise ValueError(
            f"invalid device {value!r}: expected an absolute path (/dev/sdb1), "
            "volume:<ReplicatedVolume name>, or for a network filesystem host:/export "
            "(nfs, nfs4, glusterfs) or //host/share (cifs)"
        )
    return value


Device = Annotated[str, AfterValidator(_check_device)]


class NodeScore(ApiModel):
    name: Name = Field(description="A node the group may run on.")
    score: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        description="Preference for the node: the highest eligible score wins (rsc_location).",
    )


class MoveTo(ApiModel):
    node: Name = Field(description="Node the operator moved the group to (`ha move`).")
    until: Timestamp | None = Field(
        default=None, description="When the move expires and normal placement resumes."
    )


class Placement(ApiModel):
    nodes: list[NodeScore] = Field(
        default_factory=list, description="Preferred nodes and their scores (failover domain)."
    )
    restricted: bool = Field(
        default=False,
        description="Run only on the listed nodes; otherwise any node, unlisted ones scoring 0.",
    )
    stickiness: int = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description=(
            "Bonus for the node the group runs on: a group moves only to a node scoring more "
            "than this above it. 0 fails back to the best node (Heartbeat auto_failback on)."
        ),
    )
    move_to: MoveTo | None = Field(
        default=None, description="An operator's move, set by `ha move`; expires by itself."
    )


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0s")
    return value


PositiveDuration = Annotated[Duration, AfterValidator(_positive)]


class Timeouts(ApiModel):
    start: PositiveDuration = Field(default=timedelta(seconds=20), description="Limit for a start.")
    stop: PositiveDuration = Field(default=timedelta(seconds=20), description="Limit for a stop.")
    monitor: PositiveDuration = Field(
        default=timedelta(seconds=20), description="Limit for a status check."
    )


class TcpProbe(ApiModel):
    port: Port = Field(description="TCP port that must accept a connection.")
    host: Host = Field(default="127.0.0.1", description="Host to connect to.")


def _status_range(value: str) -> tuple[int, int]:
    low, _, high = value.partition("-")
    return int(low), int(high or low)


def _check_status_range(value: str) -> str:
    low, high = _status_range(value)
    if low > high:
        raise ValueError(f"{value!r} is an empty range: write the lower status first")
    return value


class HttpProbe(ApiModel):
    port: Port = Field(description="HTTP port.")
    path: Annotated[str, StringConstraints(pattern=r"^/[^\s]*$")] = Field(
        default="/", description="Path to GET, with its query if any; starts with '/'."
    )
    host: Host = Field(default="127.0.0.1", description="Host to connect to.")
    scheme: Literal["http", "https"] = Field(
        default="http",
        description="https checks that the service answers over TLS, not its certificate.",
    )
    expect_status: Annotated[
        str,
        StringConstraints(pattern=r"^[1-5][0-9]{2}(-[1-5][0-9]{2})?$"),
        AfterValidator(_check_status_range),
    ] = Field(default="200-399", description="Status or range of statuses that count as healthy.")

    @property
    def status_range(self) -> tuple[int, int]:
        return _status_range(self.expect_status)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


class ExecProbe(ApiModel):
    command: list[str] = Field(min_length=1, description="argv; exit status 0 means healthy.")


class Probe(ApiModel):
    model_config = one_of("tcp", "http", "exec")

    tcp: TcpProbe | None = Field(default=None, description="Healthy when a TCP connect succeeds.")
    http: HttpProbe | None = Field(default=None, description="Healthy when a GET answers.")
    exec: ExecProbe | None = Field(default=None, description="Healthy when the command exits 0.")
    period: PositiveDuration = Field(
        default=timedelta(seconds=5), description="Interval between checks."
    )
    timeout: PositiveDuration = Field(
        default=timedelta(seconds=1), description="Limit for one check; at most the period."
    )
    failure_threshold: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that make the resource failed."
    )
    initial_delay: Duration = Field(
        default=timedelta(0), description="Grace after a start before the first check."
    )

    @model_validator(mode="before")
    @classmethod
    def _argv_shapes(cls, data: object) -> object:
        # Only {command: [...]}: a CRD's structural schema cannot say "a list or an object",
        # so a bare argv valid here would be refused in Kubernetes mode. Say how to write it.
        if isinstance(data, dict) and isinstance(data.get("exec"), list | str):
            given = data["exec"]
            argv = given if isinstance(given, list) else given.split()
            raise ValueError(
                f"exec: write the command as {{command: [{', '.join(map(str, argv))}]}}: a "
                "list of arguments under command (no shell splits a string)"
            )
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> Probe:
        _exactly_one(self, ("tcp", "http", "exec"), "a probe")
        if self.timeout > self.period:
            raise ValueError(
                f"timeout ({format_duration(self.timeout)}) is longer than period "
                f"({format_duration(self.period)}): shorten the timeout or lengthen the period"
            )
        return self


class VolumeResource(ApiModel):
    name: Name = Field(description="ReplicatedVolume to promote to Primary on the group's node.")


FsckPolicy = Literal["auto", "force", "never"]


class FilesystemResource(ApiModel):
    device: Device = Field(
        description=(
            "What to mount: a block device path (/dev/sdb1; a regular image file is refused: "
            "attach it with losetup first), volume:<name> for a ReplicatedVolume (its "
            "Primary's NBD export on this node, attached through nbdfuse and a loop device), "
            "or for a network filesystem host:/export (nfs, nfs4, glusterfs) or //host/share "
            "(cifs)."
        )
    )
    mount_point: AbsPath = Field(description="Directory to mount on; created if missing.")
    fs_type: Annotated[str, StringConstraints(pattern=r"^[a-z0-9.]+$")] = Field(
        default="ext4", description="Filesystem type, as mount -t."
    )
    options: list[str] = Field(default_factory=list, description="Mount options, as mount -o.")
    fsck: FsckPolicy = Field(
        default="auto",
        description=(
            "Check before mounting. auto: a filesystem without a journal (ext2, vfat, ...) "
            "is preened (fsck -p) at every start, as the OCF Filesystem agent does; a "
            "journaled one (ext3, ext4, xfs, ...) only when its superblock says the kernel "
            "found errors in it (ext family), since the mount's journal replay is the "
            "recovery after a crash and a full check could outlast timeouts.start. force: "
            "a full check in preen mode (e2fsck -f -p, fsck -p) at every start. never: no "
            "check. A check that leaves errors uncorrected fails the start. Network "
            "filesystems are never checked."
        ),
    )

    @model_validator(mode="after")
    def _device_fits_type(self) -> FilesystemResource:
        network_type = self.fs_type in NETWORK_FS_TYPES
        if is_network_device(self.device) and not network_type:
            raise ValueError(
                f"device {self.device!r} is a network source, which fsType {self.fs_type!r} "
                f"cannot mount: set fsType to one of {', '.join(NETWORK_FS_TYPES)}, or device "
                "to a block device path or volume:<name>"
            )
        if network_type and not is_network_device(self.device):
            raise ValueError(
                f"fsType {self.fs_type!r} is a network filesystem, so device must be "
                "host:/export (nfs, nfs4, glusterfs) or //host/share (cifs), not "
                f"{self.device!r}"
            )
        if network_type and self.fsck == "force":
            raise ValueError(
                f"fsck: force cannot check a network filesystem ({self.fs_type}): use auto or never"
            )
        return self


class ArpSettings(ApiModel):
    count: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Gratuitous ARPs (IPv6: unsolicited neighbour advertisements) sent on "
        "takeover; the first one is what tells the network the address moved.",
    )
    interval: Duration = Field(
        default=timedelta(milliseconds=200), description="Gap between those ARPs."
    )
    refresh: Duration = Field(
        default=timedelta(seconds=10),
        description="Re-announce the address this often while it is up; 0s turns it off.",
    )


class IpResource(ApiModel):
    address: CIDR = Field(description="Floating address with prefix, e.g. 192.168.1.10/24.")
    interface: InterfaceName | None = Field(
        default=None,
        description="Interface to add it to; by default the one already in that subnet.",
    )
    arp: ArpSettings = Field(
        default_factory=ArpSettings,
        description="Gratuitous ARP / unsolicited neighbour advertisements.",
    )

    @field_validator("address")
    @classmethod
    def _host_address(cls, value: str) -> str:
        iface = ipaddress.ip_interface(value)
        ip, net = iface.ip, iface.network
        if ip.is_loopback or ip.is_multicast or ip.is_unspecified:
            raise ValueError(
                f"{ip} is a loopback, multicast or unspecified address: it cannot serve as a "
                "floating service address"
            )
        # On a /31 too: a floating address moves within a subnet that other hosts share.
        if (
            iface.version == 4
            and net.prefixlen < 32
            and ip
            in (
                net.network_address,
                net.broadcast_address,
            )
        ):
            raise ValueError(
                f"{value} is the network's own or broadcast address: pick a host address "
                f"inside {net}"
            )
        return value


def _check_ocf_params(value: dict[str, str]) -> dict[str, str]:
    for name in value:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError(
                f"parameter name {name!r} is not a shell identifier (letters, digits, "
                "underscore): it becomes the environment variable OCF_RESKEY_<name>"
            )
    return value


class OcfService(ApiModel):
    agent: Annotated[
        str, StringConstraints(pattern=r"^(ocf:)?[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+$")
    ] = Field(
        description="provider:type of the OCF agent, e.g. heartbeat:IPaddr2 (Pacemaker's "
        "ocf:heartbeat:IPaddr2 is read the same)."
    )
    params: Annotated[dict[str, str], AfterValidator(_check_ocf_params)] = Field(
        default_factory=dict, description="Parameters, passed as OCF_RESKEY_<name>."
    )

    @property
    def provider(self) -> str:
        return self.agent.removeprefix("ocf:").split(":", 1)[0]

    @property
    def type(self) -> str:
        return self.agent.removeprefix("ocf:").split(":", 1)[1]


class ExecService(ApiModel):
    command: list[str] = Field(min_length=1, description="argv of the process Vigil supervises.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    working_dir: AbsPath | None = Field(default=None, description="Working directory.")
    stop_signal: Literal[SIGNALS] = Field(  # type: ignore[valid-type]
        default="SIGTERM", description="Signal that asks the process to stop."
    )
    stop_timeout: Duration = Field(
        default=timedelta(seconds=10),
        description="Grace after stopSignal before SIGKILL.",
    )


def _check_lsb(value: str) -> str:
    if not value or ("/" in value and not value.startswith("/")):
        raise ValueError(
            f"{value!r} is neither a script name in /etc/init.d (e.g. apache2) nor an "
            "absolute path (e.g. /opt/app/init.sh)"
        )
    return value


class ServiceResource(ApiModel):
    model_config = one_of("systemd", "lsb", "ocf", "exec")
    VARIANTS: ClassVar[tuple[str, ...]] = ("systemd", "lsb", "ocf", "exec")

    systemd: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9@:._\\-]+$")] | None = Field(
        default=None, description="A systemd unit, e.g. postgresql.service."
    )
    lsb: Annotated[str, AfterValidator(_check_lsb)] | None = Field(
        default=None, description="An init script: a name in /etc/init.d or an absolute path."
    )
    ocf: OcfService | None = Field(default=None, description="An OCF resource agent.")
    exec: ExecService | None = Field(default=None, description="A command Vigil runs itself.")

    @model_validator(mode="after")
    def _one_kind(self) -> ServiceResource:
        _exactly_one(self, self.VARIANTS, "a service")
        return self

    @property
    def variant(self) -> str:
        """Which kind of service this is: systemd, lsb, ocf or exec."""
        return next(v for v in self.VARIANTS if getattr(self, v) is not None)


class Resource(ApiModel):
    model_config = one_of("volume", "filesystem", "ip", "service")

    name: Name | None = Field(
        default=None, description="Name within the group; derived from the resource if unset."
    )
    volume: VolumeResource | None = Field(default=None, description="Promote a volume.")
    filesystem: FilesystemResource | None = Field(default=None, description="Mount a filesystem.")
    ip: IpResource | None = Field(default=None, description="Bring up a floating IP.")
    service: ServiceResource | None = Field(default=None, description="Run a service.")
    probe: Probe | None = Field(default=None, description="Health check of the resource.")
    timeouts: Timeouts = Field(default_factory=Timeouts, description="Action time limits.")

    KINDS: ClassVar[tuple[str, ...]] = ("volume", "filesystem", "ip", "service")

    @model_validator(mode="after")
    def _one_kind(self) -> Resource:
        _exactly_one(self, self.KINDS, "a resource")
        return self

    @property
    def type(self) -> str:
        return next(kind for kind in self.KINDS if getattr(self, kind) is not None)

    def resolved_name(self) -> str:
        """The given name, or one derived from what the resource is."""
        if self.name:
            return self.name
        if self.volume:
            return f"volume-{self.volume.name}"
        if self.filesystem:
            slug = re.sub(r"[^a-z0-9]+", "-", self.filesystem.mount_point.lower()).strip("-")
            return f"fs-{slug or 'root'}"
        if self.ip:
            address = self.ip.address.split("/")[0]
            return "ip-" + re.sub(r"[^a-z0-9]+", "-", address.lower()).strip("-")
        assert self.service is not None
        service = self.service
        if service.systemd:
            base = service.systemd.removesuffix(".service")
        elif service.lsb:
            base = service.lsb.rsplit("/", 1)[-1]
        elif service.ocf:
            base = service.ocf.agent.split(":", 1)[1]
        else:
            assert service.exec is not None
            base = service.exec.command[0].rsplit("/", 1)[-1]
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
        return f"service-{slug or 'exec'}"[:63].rstrip("-")


class ResourceGroupSpec(ApiModel):
    enabled: bool = Field(
        default=True, description="false stops the group everywhere and keeps it stopped."
    )
    placement: Placement = Field(
        default_factory=Placement, description="Where the group may and should run."
    )
    migration_threshold: int = Field(
        default=3,
        ge=1,
        le=1_000_000,
        description="Failures on a node after which the group leaves that node.",
    )
    failure_timeout: Duration = Field(
        default=timedelta(minutes=10),
        description="Failures older than this are forgotten (0s: never forget).",
    )
    depends_on: list[Name] = Field(
        default_factory=list, description="Groups that must run before this one starts."
    )
    colocate: list[Name] = Field(
        default_factory=list, description="Groups this one must run on the same node as."
    )
    anti_colocate: list[Name] = Field(
        default_factory=list,
        description="Groups this one must not share a node with while enough nodes exist.",
    )
    resources: list[Resource] = Field(
        min_length=1, description="Started in order, stopped in reverse order."
    )


class ResourceStatus(ApiModel):
    name: str = Field(description="Resource name within the group.")
    state: Literal["Running", "Stopped", "Failed", "Unknown"] = Field(
        default="Unknown", description="What the node agent last observed."
    )
    message: str = Field(default="", description="Details of the last observation or action.")


class ResourceGroupStatus(Status):
    node: str | None = Field(default=None, description="Node the group runs on now.")
    phase: Literal[
        "Pending", "Starting", "Running", "Stopping", "Stopped", "Failed", "StopFailed", "Blocked"
    ] = Field(
        default="Pending",
        description=(
            "Where the group is in its life cycle. StopFailed: a stop failed on `node`, so it "
            "may still run there; with fencing on, that node is fenced."
        ),
    )
    resources: list[ResourceStatus] = Field(
        default_factory=list, description="Per-resource observations."
    )
    placement_epoch: int | None = Field(
        default=None, description="Epoch of the placement this status answers to."
    )
    reporter: str | None = Field(default=None, description="Node that wrote this status.")
    last_action: str | None = Field(
        default=None, description="The last start, stop or failure, as a sentence."
    )


class ResourceGroup(Object):
    KIND: ClassVar[str] = "ResourceGroup"
    PLURAL: ClassVar[str] = "resourcegroups"
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ("rg",)
    ALIASES: ClassVar[tuple[str, ...]] = ("group", "groups")

    kind: Literal["ResourceGroup"] = Field(
        description="ResourceGroup: resources that run together, in order, on one node."
    )
    spec: ResourceGroupSpec = Field(description="The group's resources and placement.")
    status: ResourceGroupStatus = Field(
        default_factory=ResourceGroupStatus, description="Observed state, written by Vigil."
    )

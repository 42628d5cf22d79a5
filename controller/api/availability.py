"""What this version of Vigil accepts because it can do it. Pure.

The API describes the whole product, some of it not built yet. An object that asks for a
part no node can perform is refused at `ha apply`, naming the field, why, and what to use
today, instead of being stored and then silently ignored (or, worse, believed to protect).
Each rule goes when its part lands.
"""

from __future__ import annotations

from controller.api.decode import Problem
from controller.api.group import VOLUME_DEVICE_PREFIX, ResourceGroup
from controller.api.meta import Object
from controller.api.volume import ReplicatedVolume

VOLUMES = (
    "ReplicatedVolume objects are not available in this version of Vigil: no node runs a "
    "replicated volume for Vigil yet. Replicate the disk with `blockrepl serve` (or DRBD) "
    "outside Vigil until volume resources land"
)
VOLUME_RESOURCE = (
    "volume resources are not available in this version of Vigil: no node has an actuator "
    "for them yet. Promote the disk outside Vigil, or run DRBD's OCF agent as a service "
    "(service: {ocf: {agent: linbit:drbd, ...}})"
)
FILESYSTEM_ON_VOLUME = (
    "a filesystem on a volume:<name> device is not available in this version of Vigil: no "
    "node runs a replicated volume for Vigil yet, so there is no NBD export to attach. "
    "Give a block device path (device: /dev/drbd0, promoted outside Vigil), or use the OCF "
    "agent as a service: service: {ocf: {agent: heartbeat:Filesystem, params: {device: "
    "..., directory: ..., fstype: ...}}}"
)


def unavailable(obj: Object) -> list[Problem]:
    """Why no node could do what ``obj`` asks, one problem per field; [] when it can."""
    found: list[Problem] = []

    def refuse(path: tuple[str | int, ...], message: str) -> None:
        found.append(Problem(path, message))

    if isinstance(obj, ReplicatedVolume):
        refuse(("spec",), VOLUMES)
    elif isinstance(obj, ResourceGroup):
        for i, resource in enumerate(obj.spec.resources):
            if resource.volume is not None:
                refuse(("spec", "resources", i, "volume"), VOLUME_RESOURCE)
            # Block device paths and network mounts run (nodeagent/actuators/filesystem.py);
            # a volume: device waits for the volume actuator, which serves its NBD export.
            fs = resource.filesystem
            if fs is not None and fs.device.startswith(VOLUME_DEVICE_PREFIX):
                refuse(("spec", "resources", i, "filesystem", "device"), FILESYSTEM_ON_VOLUME)
    return found

"""What this version of Vigil accepts because it can do it. Pure.

The API describes the whole product, some of it not built yet. An object that asks for a
part no node can perform is refused at `ha apply`, naming the field, why, and what to use
today, instead of being stored and then silently ignored (or, worse, believed to protect).
Each rule goes when its part lands.
"""

from __future__ import annotations

from controller.api.decode import Problem
from controller.api.meta import Object
from controller.api.volume import ReplicatedVolume

VOLUME_SIZE = (
    "spec.size is not available in this version of Vigil: a replica uses its whole disk "
    "minus the metadata area. Remove size, and give each replica a disk (a partition, a "
    "logical volume or a file) of the size you want"
)


def unavailable(obj: Object) -> list[Problem]:
    """Why no node could do what ``obj`` asks, one problem per field; [] when it can."""
    found: list[Problem] = []

    def refuse(path: tuple[str | int, ...], message: str) -> None:
        found.append(Problem(path, message))

    if isinstance(obj, ReplicatedVolume) and obj.spec.size is not None:
        refuse(("spec", "size"), VOLUME_SIZE)
    # Every resource of a ResourceGroup runs now: volumes, filesystems (block devices,
    # network mounts, volume: devices), VIPs and services.
    return found

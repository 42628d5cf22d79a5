"""Key layout of Vigil's store.

Every key lives under ``/vigil/<cluster>/``; the store API takes keys relative to that
prefix, and these helpers build them so the layout is written down in one place.
"""

from __future__ import annotations

LEADER = "leader"
SPECS = "specs/"
STATUS = "status/"
NODES = "nodes/"
PLACEMENT = "placement/"
EVENTS = "events/"
FENCING = "fencing/"
FAILURES = "failures/"
VOLUMES = "volumes/"  # blockrepl's outdate records: volumes/<volume>/outdated
SPECS_GUARD = "specs-guard"
OUTDATED = "outdated"


def _check_name(what: str, name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    if "/" in name:
        raise ValueError(f"{what} {name!r} must not contain '/': it is one segment of a store key")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise ValueError(f"{what} {name!r} must not contain control characters")
    return name


def cluster_prefix(cluster: str) -> str:
    """Absolute etcd prefix of one cluster: ``/vigil/<cluster>/``."""
    return f"/vigil/{_check_name('cluster name', cluster)}/"


def spec_prefix(kind: str) -> str:
    return f"{SPECS}{_check_name('kind', kind)}/"


def status_prefix(kind: str) -> str:
    return f"{STATUS}{_check_name('kind', kind)}/"


def spec_key(kind: str, name: str) -> str:
    return f"{spec_prefix(kind)}{_check_name('name', name)}"


def status_key(kind: str, name: str) -> str:
    return f"{status_prefix(kind)}{_check_name('name', name)}"


def node_key(node: str) -> str:
    return f"{NODES}{_check_name('node name', node)}"


def placement_key(group: str) -> str:
    return f"{PLACEMENT}{_check_name('group name', group)}"


def fencing_key(node: str) -> str:
    return f"{FENCING}{_check_name('node name', node)}"


def volume_outdate_key(volume: str) -> str:
    """blockrepl's resource-level outdate records of one volume (blockrepl/outdate.py)."""
    return f"{VOLUMES}{_check_name('volume name', volume)}/{OUTDATED}"


def failure_prefix(group: str) -> str:
    return f"{FAILURES}{_check_name('group name', group)}/"


def failure_key(group: str, node: str) -> str:
    return f"{failure_prefix(group)}{_check_name('node name', node)}"


def event_prefix(kind: str, name: str) -> str:
    return f"{EVENTS}{_check_name('kind', kind)}/{_check_name('name', name)}/"


def check_relative_key(key: str, *, prefix: bool = False) -> str:
    """Reject absolute or malformed relative keys before they reach etcd.

    A prefix may be empty (the whole cluster); a key may not.
    """
    what = "prefix" if prefix else "key"
    if not isinstance(key, str):
        raise ValueError(f"store {what} must be a string, got {type(key).__name__}")
    if not key and not prefix:
        raise ValueError("store key must not be empty")
    if key.startswith("/"):
        raise ValueError(
            f"store {what} {key!r} must be relative to /vigil/<cluster>/ (drop the leading '/')"
        )
    if "\x00" in key:
        raise ValueError(f"store {what} {key!r} must not contain NUL bytes")
    return key


def prefix_range_end(prefix: bytes) -> bytes:
    """etcd's range end covering every key that starts with prefix."""
    b = bytearray(prefix)
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"

"""Generation identifiers (DRBD 8.4 semantics) and metadata flags.

A generation tuple is (current, bitmap, history1, history2), each a 64-bit value. The
lowest bit of a UUID records the role (1 = Primary) at the time the UUID was set, so all
comparisons mask it off (see :func:`blockrepl.uuids.compare_uuids`). ``UUID_JUST_CREATED``
marks a volume that was never synced. Pure functions only: the caller persists the result
(and must do so *before* acknowledging the first write of a new generation).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from enum import IntFlag

UUID_JUST_CREATED = 4
UUID_NEW_BM_OFFSET = 0x0001000000000000
UUID_MASK = 0xFFFFFFFFFFFFFFFF


class MdFlag(IntFlag):
    """Superblock flags, same bit values as DRBD's MDF_* (linux/drbd.h)."""

    CONSISTENT = 1
    PRIMARY_IND = 2
    CONNECTED_IND = 4
    FULL_SYNC = 8
    WAS_UP_TO_DATE = 16
    PEER_OUT_DATED = 32
    CRASHED_PRIMARY = 64
    AL_CLEAN = 128
    AL_DISABLED = 256


KNOWN_FLAGS = int(
    MdFlag.CONSISTENT
    | MdFlag.PRIMARY_IND
    | MdFlag.CONNECTED_IND
    | MdFlag.FULL_SYNC
    | MdFlag.WAS_UP_TO_DATE
    | MdFlag.PEER_OUT_DATED
    | MdFlag.CRASHED_PRIMARY
    | MdFlag.AL_CLEAN
    | MdFlag.AL_DISABLED
)


@dataclass(frozen=True)
class Generation:
    """The GI tuple (DRBD: UI_CURRENT, UI_BITMAP, UI_HISTORY_START, UI_HISTORY_END)."""

    current: int = UUID_JUST_CREATED
    bitmap: int = 0
    history1: int = 0
    history2: int = 0

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.current, self.bitmap, self.history1, self.history2)

    def describe(self) -> str:
        return ":".join(f"{u:016X}" for u in self.as_tuple())


def random_uuid() -> int:
    """A fresh 64-bit UUID, never equal to 0 or JUST_CREATED once the role bit is masked."""
    while True:
        value = secrets.randbits(64) & ~1
        if value not in (0, UUID_JUST_CREATED):
            return value


def _with_role(value: int, primary: bool) -> int:
    return (value | 1) if primary else (value & ~1)


def new_current(gen: Generation, primary: bool, value: int | None = None) -> Generation:
    """drbd_uuid_new_current: B := C (unmasked), C := random | role bit. No history rotation."""
    fresh = random_uuid() if value is None else value
    return replace(gen, bitmap=gen.current, current=_with_role(fresh, primary))


def set_current(gen: Generation, value: int, primary: bool) -> Generation:
    """_drbd_uuid_set(UI_CURRENT) with rotation of the old current into history."""
    rotated = rotate_into_history(gen, gen.current)
    return replace(rotated, current=_with_role(value, primary))


def rotate_into_history(gen: Generation, value: int) -> Generation:
    """H2 := H1, H1 := value (no-op for 0)."""
    if value == 0:
        return gen
    return replace(gen, history2=gen.history1, history1=value)


def clear_bitmap_uuid(gen: Generation) -> Generation:
    """drbd_uuid_set_bm(0): the bitmap UUID moves into history and becomes 0."""
    if gen.bitmap == 0:
        return gen
    return replace(rotate_into_history(gen, gen.bitmap), bitmap=0)


def start_resync_as_source(gen: Generation, value: int | None = None) -> Generation:
    """drbd_gen_and_send_sync_uuid: new B := old B + UUID_NEW_BM_OFFSET (random if 0/JC)."""
    old = gen.bitmap
    if old in (0, UUID_JUST_CREATED):
        new_bm = random_uuid() if value is None else value
    else:
        new_bm = (old + UUID_NEW_BM_OFFSET) & UUID_MASK
    rotated = rotate_into_history(gen, old)
    return replace(rotated, bitmap=new_bm)


def receive_sync_uuid(gen: Generation, sync_uuid: int, primary: bool) -> Generation:
    """SyncTarget on P_SYNC_UUID: C := sync UUID, B := 0, *no* history rotation."""
    return replace(gen, current=_with_role(sync_uuid, primary), bitmap=0)


def finish_resync_as_target(gen: Generation, peer: Generation, primary: bool) -> Generation:
    """drbd_resync_finished on the target: adopt the source's tuple, then B := 0."""
    adopted = Generation(
        current=_with_role(peer.current, primary),
        bitmap=peer.bitmap,
        history1=peer.history1,
        history2=peer.history2,
    )
    return clear_bitmap_uuid(adopted)


def finish_resync_as_source(gen: Generation) -> Generation:
    """drbd_resync_finished on the source: B := 0 (rotated into history)."""
    return clear_bitmap_uuid(gen)

"""Backing-disk I/O error policy (DRBD ``on-io-error``) and the bookkeeping it needs (pure).

What DRBD 8.4 does, and what blockrepl does (replicated.py, replication/diskless.py):

* ``detach`` (DRBD's default, and Vigil's): the disk goes Failed -> Diskless; as the
  "last chance" DRBD syncs the metadata with MDF_CONSISTENT and MDF_WAS_UP_TO_DATE
  cleared (disk < Inconsistent), so a later attach is Inconsistent and resyncs instead of
  trusting the data. The failed request and all later ones are served by the peer. The
  peer (``after_state_ch``: lost the peer's copy while it is Primary, own bitmap UUID 0,
  own disk UpToDate) starts a new current UUID, and marks every write it receives from
  the Diskless Primary out of sync (``receive_Data``, ``pdsk < D_INCONSISTENT``). blockrepl
  does all of this; if the metadata can't be written any more, the peer's new UUID
  still makes the failed node SyncTarget when it comes back.
* ``pass_on``: DRBD sets the disk Inconsistent and marks the failed block out of sync
  (READ and WRITE errors); a read is retried on the peer and a write completes as OK if
  the peer wrote it (``drbd_req_complete``: ok = LOCAL_OK or NET_OK). blockrepl marks
  the same (bitmap + Inconsistent, so the next handshake makes the peer the source) but,
  as Vigil's API defines pass_on, hands the EIO to the NBD client (the older DRBD 8.4
  guide's wording: "report the I/O error to the upper layers"). A write that failed
  locally but reached the peer keeps its dirty bits although the peer acknowledged it.
  Reads of blocks that failed keep failing (the local copy is not trusted). With no
  UpToDate peer connected the Inconsistent Primary refuses writes (DRBD's
  ``on-no-data-accessible io-error``): a resync would otherwise overwrite them.

Buffered writes only report a device error at the next ``fdatasync``; the error then
names no offset. :class:`Unflushed` keeps the 4 MiB extents written since the last
successful flush so such an error can be pinned to the extents it may concern.
"""

from __future__ import annotations

import errno
import threading
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from blockrepl.errors import BlockReplError
from blockrepl.layout import AL_EXTENT_SIZE, BM_BYTES_PER_BIT

# errno values that mean "the device failed", as opposed to a bad request (EINVAL) or a
# full thin pool (ENOSPC, which the NBD client can act on).
DEVICE_ERRNOS = frozenset({errno.EIO, errno.ENXIO, errno.ENODEV, errno.EREMOTEIO, errno.ENOMEDIUM})


class OnIoError(Enum):
    DETACH = "detach"
    PASS_ON = "pass_on"


def parse_on_io_error(text: str) -> OnIoError:
    value = text.strip().lower().replace("-", "_")
    for policy in OnIoError:
        if policy.value == value:
            return policy
    raise BlockReplError(f"--on-io-error {text!r}: use 'detach' (default) or 'pass_on'")


def is_device_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DEVICE_ERRNOS


@dataclass(frozen=True)
class DiskFailure:
    """One device error as reported in status."""

    op: str  # read, write, zero, trim, flush
    errno: int
    offset: int | None  # None: a flush error, the failed write is not known
    length: int
    message: str
    at: float

    @classmethod
    def from_exc(cls, op: str, exc: OSError, offset: int | None, length: int) -> DiskFailure:
        code = exc.errno or errno.EIO
        return cls(op, code, offset, length, exc.strerror or str(exc), time.time())

    def describe(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "errno": self.errno,
            "error": errno.errorcode.get(self.errno, str(self.errno)),
            "offset": self.offset,
            "length": self.length,
            "message": self.message,
            "time": round(self.at, 3),
        }


class FailedBlocks:
    """4 KiB blocks whose local copy is known bad (pass_on): their reads fail."""

    def __init__(self) -> None:
        self._blocks: set[int] = set()

    def add(self, offset: int, length: int) -> None:
        self._blocks.update(range(*_span(offset, length)))

    def touches(self, offset: int, length: int) -> bool:
        if not self._blocks or length <= 0:
            return False
        return any(b in self._blocks for b in range(*_span(offset, length)))

    def count(self) -> int:
        return len(self._blocks)


class Unflushed:
    """4 MiB extents written since the last successful flush.

    Call :meth:`add` when a local write *completed* (it is then in the page cache, so a
    flush started later covers it); :meth:`snapshot` before a flush, :meth:`flushed` after
    it succeeded. Writes completing during the flush keep their extents tracked.
    """

    def __init__(self) -> None:
        self._extents: dict[int, int] = {}  # extent -> epoch of its last completed write
        self._epoch = 0
        self._lock = threading.Lock()  # a Secondary flushes on its apply thread

    def add(self, offset: int, length: int) -> None:
        if length > 0:
            first, last = offset // AL_EXTENT_SIZE, (offset + length - 1) // AL_EXTENT_SIZE
            with self._lock:
                for e in range(first, last + 1):
                    self._extents[e] = self._epoch

    def snapshot(self) -> int:
        with self._lock:
            epoch = self._epoch
            self._epoch += 1
            return epoch

    def flushed(self, epoch: int) -> None:
        with self._lock:
            self._extents = {e: n for e, n in self._extents.items() if n > epoch}

    def ranges(self) -> list[tuple[int, int]]:
        with self._lock:
            return [(e * AL_EXTENT_SIZE, AL_EXTENT_SIZE) for e in sorted(self._extents)]


def _span(offset: int, length: int) -> tuple[int, int]:
    return offset // BM_BYTES_PER_BIT, (offset + length - 1) // BM_BYTES_PER_BIT + 1

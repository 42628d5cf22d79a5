"""The storage interface the NBD server (and later the replication layer) serves."""

from __future__ import annotations

from typing import Protocol


class BlockBackend(Protocol):
    """Byte-addressed block storage. Offsets/lengths are already bounds-checked.

    ``pwrite``/``trim``/``write_zeroes`` complete when the data is in the local page cache
    (or further); with ``fua`` they complete only once durable. ``flush`` makes every
    previously completed write durable. ``pwrite`` must not keep a reference to ``data``
    once it returned or raised: the NBD server reuses the buffer for a later request.
    """

    @property
    def size(self) -> int: ...

    @property
    def read_only(self) -> bool: ...

    async def pread(self, offset: int, length: int) -> bytes: ...

    async def pwrite(self, offset: int, data: bytes | bytearray, fua: bool = False) -> None: ...

    async def flush(self) -> None: ...

    async def trim(self, offset: int, length: int, fua: bool = False) -> None: ...

    async def write_zeroes(
        self, offset: int, length: int, fua: bool = False, may_trim: bool = True
    ) -> None: ...

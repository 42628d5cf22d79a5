"""A heartbeat link over a serial line (a null-modem cable), as Heartbeat's `serial`.

The same `HeartbeatTransport` as udp.py, on a byte stream: each packet goes out framed
(framing.py) and the decoder resynchronises after garbage or a torn frame. A serial line
is point to point: whoever is on the other end is the peer (every packet names its
sender), so `broadcast` and `reply` both write to the line.

I/O never blocks the liveness loop: pyserial opens and configures the port (baud, raw
mode, the exclusive lock, `reset_input_buffer()` so that heartbeats buffered while
nobody read, in a pty or a UART, are not taken for fresh ones), then the loop watches its
file descriptor (`add_reader`) and reads whatever is waiting in one call: pyserial's
`readline()` reads a byte per system call. A write that the line cannot take at once is
counted in `send_errors` and dropped: a heartbeat that waits is a stale heartbeat.

A line that fails (the adapter unplugged, socat gone: reads end in EIO or EOF) or a
device that cannot be opened does not stop the other links: the port is closed and
opened again with back-off, and `last_error` says why meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from dataclasses import dataclass
from typing import Any

from nodeagent.heartbeat.framing import FrameDecoder, FramingError, encode_frame
from nodeagent.heartbeat.udp import Deliver

log = logging.getLogger(__name__)

READ_SIZE = 65536
REOPEN_MIN = 0.1
REOPEN_MAX = 5.0


@dataclass(frozen=True)
class SerialLinkConfig:
    name: str
    device: str
    baud: int = 115200


class SerialTransport:
    def __init__(
        self,
        config: SerialLinkConfig,
        *,
        reopen_min: float = REOPEN_MIN,
        reopen_max: float = REOPEN_MAX,
    ) -> None:
        self.config = config
        self.name = config.name
        self.send_errors = 0
        self.reopens = 0
        self.last_error: str | None = None
        self.decoder = FrameDecoder()
        self.reopen_min = reopen_min
        self.reopen_max = reopen_max
        self._port: Any = None  # serial.Serial, imported only where a serial link exists
        self._fd = -1
        self._deliver: Deliver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def is_open(self) -> bool:
        return self._port is not None

    async def open(self, deliver: Deliver) -> None:
        """Open the line now if possible; otherwise keep trying in the background (a device
        that appears late must not keep the other links from starting)."""
        self._deliver = deliver
        self._loop = asyncio.get_running_loop()
        self._closed = False
        try:
            self._open_port()
        except OSError as exc:
            self._failed(f"cannot open {self.config.device}: {exc}")

    def _open_port(self) -> None:
        # pyserial is imported here so that nodes without a serial link never load it into
        # the liveness process.
        import serial

        cfg = self.config
        port = serial.Serial(
            cfg.device, cfg.baud, timeout=0, write_timeout=0, exclusive=True, dsrdtr=False
        )
        try:
            port.reset_input_buffer()
            fd = port.fileno()
            os.set_blocking(fd, False)
            assert self._loop is not None
            self._loop.add_reader(fd, self._readable)
        except BaseException:
            port.close()
            raise
        self._port, self._fd = port, fd
        self.decoder.reset()
        self.last_error = None
        log.info("heartbeat link %s: %s open at %d baud", self.name, cfg.device, cfg.baud)

    def _close_port(self) -> None:
        if self._port is None:
            return
        if self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
        with contextlib.suppress(Exception):
            self._port.close()
        self._port, self._fd = None, -1

    def _failed(self, why: str) -> None:
        """The line is unusable: close it, and open it again with back-off."""
        if self.last_error is None:
            log.warning("heartbeat link %s: %s; reopening with back-off", self.name, why)
        self.last_error = why
        self._close_port()
        if not self._closed and self._reopen is None and self._loop is not None:
            self._reopen = self._loop.create_task(self._reopen_loop(), name=f"reopen-{self.name}")

    async def _reopen_loop(self) -> None:
        delay = self.reopen_min
        try:
            while not self._closed:
                await asyncio.sleep(delay)
                try:
                    self._open_port()
                    self.reopens += 1
                    return
                except OSError as exc:
                    self.last_error = f"cannot open {self.config.device}: {exc}"
                    delay = min(2 * delay, self.reopen_max)
        finally:
            self._reopen = None

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._failed(f"read failed: {exc}")
            return
        if not data:
            self._failed("end of file (the other end of the line is gone)")
            return
        for payload in self.decoder.feed(data):
            if self._deliver is not None:
                self._deliver(payload, self.name)

    def _write(self, data: bytes) -> int:
        if self._port is None:
            return 0
        try:
            frame = encode_frame(data)
        except FramingError as exc:
            self.send_errors += 1
            self.last_error = str(exc)
            return 1
        try:
            written = os.write(self._fd, frame)
        except BlockingIOError:
            self.send_errors += 1  # the line is full: nobody reads the other end
            return 1
        except OSError as exc:
            self.send_errors += 1
            if exc.errno in (errno.EIO, errno.ENXIO, errno.EBADF, errno.ENODEV):
                self._failed(f"write failed: {exc}")
            return 1
        if written < len(frame):
            # The rest is dropped: the far end resynchronises at the next frame.
            self.send_errors += 1
        return 1

    def broadcast(self, data: bytes) -> int:
        return self._write(data)

    def reply(self, data: bytes, to: object) -> None:
        self._write(data)

    def stats(self) -> dict[str, int]:
        """Error counters and whether the device is open: what the node record carries
        (they change only on faults)."""
        s = self.decoder.stats
        return {
            "open": int(self.is_open),
            "dropped_bytes": s.dropped_bytes,
            "bad_frames": s.bad_frames,
            "send_errors": self.send_errors,
            "reopens": self.reopens,
        }

    def close(self) -> None:
        self._closed = True
        if self._reopen is not None:
            self._reopen.cancel()
            self._reopen = None
        self._close_port()

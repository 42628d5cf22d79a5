"""Virtual null-modem cables between lab nodes, for serial heartbeat links.

Nodes share the host's /dev (lab/init.py remounts only /run, /dev/shm and /var/lib/vigil),
so a pty made on the host is usable inside a node; the link naming it is made in the
node's disk directory, which the node sees as /var/lib/vigil/<name>.

- `SocatLine`: `socat pty,raw,echo=0,link=A pty,raw,echo=0,link=B`, the plain cable.
- `RelayLine`: two pty pairs and a thread copying between their masters, which a test
  drives: pause the line, inject bytes towards one end, replay what one end sent, or
  restart the line (new ptys behind the same links, as socat dying and coming back).

Neither emulates the baud rate: a pty carries bytes as fast as they are written.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import threading
import time
import tty
from pathlib import Path

from lab.errors import LabError

READY_LINE = b"starting data transfer loop"
CAPTURE = 64 * 1024


class SocatLine:
    """socat's pty pair; `stop()` ends it by its PID."""

    def __init__(self, a: Path, b: Path) -> None:
        self.links = (a, b)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 5.0) -> SocatLine:
        a, b = self.links
        self.proc = subprocess.Popen(
            ["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stderr is not None
        fd = self.proc.stderr.fileno()
        seen = b""
        deadline = time.monotonic() + timeout
        while READY_LINE not in seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                self.stop()
                raise LabError(f"socat did not start the null-modem {a} <-> {b}: {seen!r}")
            seen += chunk
        # Nobody reads socat's notices from here on: send them nowhere so that it never
        # blocks on a full pipe.
        self.proc.stderr.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        for link in self.links:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()


class _End:
    def __init__(self, link: Path) -> None:
        self.link = link
        self.master, self.slave = os.openpty()
        # Raw, no echo: the line discipline must not answer what the relay writes before
        # the node's pyserial configures its end. The relay keeps the slave open so that
        # the master does not hang up while the node has its end closed.
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        tmp = link.with_name(link.name + ".tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(link)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class RelayLine:
    """A null-modem cable the test controls; ends 0 (link `a`) and 1 (link `b`)."""

    def __init__(self, a: Path, b: Path) -> None:
        self.links = (a, b)
        self.paused = False
        self.sent: tuple[bytearray, bytearray] = (bytearray(), bytearray())
        """What each end wrote (the last CAPTURE bytes), for replays."""
        self.relayed = [0, 0]
        self._lock = threading.Lock()
        self._ends: list[_End] = []
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> RelayLine:
        self._ends = [_End(link) for link in self.links]
        self._thread = threading.Thread(target=self._run, name="relay-line", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop:
            with self._lock:
                masters = [e.master for e in self._ends]
            try:
                ready, _, _ = select.select([*masters, self._wake_r], [], [], 0.5)
            except OSError:
                continue  # an end closed by restart() under the select: look again
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
            with self._lock:
                for side, end in enumerate(self._ends):
                    if end.master not in ready:
                        continue
                    try:
                        data = os.read(end.master, 65536)
                    except OSError:
                        continue  # EAGAIN, or EIO while nobody holds the slave
                    self._capture(side, data)
                    if not self.paused:
                        self._write(1 - side, data)
                        self.relayed[side] += len(data)

    def _capture(self, side: int, data: bytes) -> None:
        buf = self.sent[side]
        buf += data
        if len(buf) > CAPTURE:
            del buf[: len(buf) - CAPTURE]

    def _write(self, side: int, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a full pty drops, as a line would
            os.write(self._ends[side].master, data)

    def inject(self, toward: int, data: bytes) -> None:
        """Write `data` on the line as if it came from the other end, to end `toward`."""
        with self._lock:
            self._write(toward, data)

    def pause(self, paused: bool = True) -> None:
        """Stop (or resume) carrying bytes either way: a cut cable."""
        with self._lock:
            self.paused = paused

    def restart(self) -> None:
        """New ptys behind the same links: the nodes' open ends fail (EIO) and must reopen."""
        with self._lock:
            old = self._ends
            self._ends = [_End(link) for link in self.links]
            for end in old:
                end.close()
        os.write(self._wake_w, b"x")

    def stop(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for end in self._ends:
            end.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        for link in self.links:
            with contextlib.suppress(FileNotFoundError):
                link.unlink()

"""Running a call inside a named network namespace (the lab's nodes; a netns= actuator)."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run fn with the calling context inside a named netns.

    Sockets keep the namespace they were created in, so only creation needs this. It
    runs on a throwaway thread because setns() switches the calling thread only, and
    a pool thread left in the wrong namespace would poison later work.
    """
    if netns is None:
        return fn()
    path = f"/run/netns/{netns}"
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            target = os.open(path, os.O_RDONLY)
        except OSError as exc:
            error.append(exc)
            return
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                error.append(OSError(err, f"setns({path}): {os.strerror(err)}"))
                return
            try:
                result.append(fn())
            except BaseException as exc:
                error.append(exc)
        finally:
            os.close(target)

    worker = threading.Thread(target=body, name=f"netns-{netns}")
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]

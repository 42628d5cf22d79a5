from __future__ import annotations

from pathlib import Path

import pytest

from nodeagent.fencing.watchdog import (
    WDIOC_GETTIMEOUT,
    WDIOC_KEEPALIVE,
    WDIOC_SETTIMEOUT,
    Watchdog,
    WatchdogError,
)


def test_ioctl_numbers_match_linux_watchdog_h() -> None:
    # From <linux/watchdog.h> on x86_64, as printed by a C program.
    assert WDIOC_KEEPALIVE == 0x80045705
    assert WDIOC_SETTIMEOUT == 0xC0045706
    assert WDIOC_GETTIMEOUT == 0x80045707


def test_a_missing_device_names_it_and_the_fix(tmp_path: Path) -> None:
    dog = Watchdog(str(tmp_path / "watchdog"), timeout=5)
    with pytest.raises(WatchdogError, match=r"watchdog .*/watchdog cannot be opened.*softdog"):
        dog.arm()
    assert not dog.armed


def test_a_device_without_the_ioctls_is_refused_and_left_closed(tmp_path: Path) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"")
    dog = Watchdog(str(path), timeout=5)
    with pytest.raises(WatchdogError, match="refused timeout 5 s"):
        dog.arm()
    assert not dog.armed
    assert path.read_bytes() == b"V"  # disarmed with the magic close


def test_a_timeout_below_one_second_is_refused() -> None:
    with pytest.raises(WatchdogError, match="at least 1 s"):
        Watchdog("/dev/watchdog", timeout=0)

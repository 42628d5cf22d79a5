from __future__ import annotations

import os

import pytest

from nodeagent.actuators.procinfo import is_same_live_process, parse_proc_stat, read_proc_stat


def test_parse_stat_with_hostile_comm() -> None:
    fields = " ".join(["S", "1", "4242", "4242"] + ["0"] * 15 + ["987654"] + ["0"] * 30)
    stat = parse_proc_stat(f"4242 (my (weird) app) {fields}")
    assert (stat.pid, stat.comm, stat.state) == (4242, "my (weird) app", "S")
    assert (stat.pgid, stat.sid, stat.starttime) == (4242, 4242, 987654)
    assert stat.alive
    with pytest.raises(ValueError, match="malformed"):
        parse_proc_stat("garbage")


def test_own_process_identity() -> None:
    me = read_proc_stat(os.getpid())
    assert me is not None and me.pid == os.getpid()
    assert is_same_live_process(os.getpid(), me.starttime)
    assert not is_same_live_process(os.getpid(), me.starttime + 1)
    assert read_proc_stat(2**22 + 12345) is None

"""Every note of every article-shaped import is in the YAML as a comment, and in the summary
counts: nothing approximated or dropped goes unsaid."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.importers.drbd import import_drbd
from controller.importers.emit import render
from controller.importers.heartbeat import import_heartbeat
from controller.importers.pacemaker import import_pacemaker
from controller.importers.result import ImportResult
from controller.importers.rgmanager import import_rgmanager

F = Path(__file__).parent / "fixtures"
SCHOOL = {"serv-a": ["130.66.201.1"], "serv-b": ["130.66.201.2"]}
PG = {"pg1": ["192.168.1.11", "10.0.0.1"], "pg2": ["192.168.1.12", "10.0.0.2"]}
HB2 = {"host_m": ["192.168.1.1"], "host_s": ["192.168.1.2"]}
PCMK = {"node1": ["192.168.1.11"], "node2": ["192.168.1.12"]}
RHCS = {"node01h": ["192.168.7.1"], "node02h": ["192.168.7.2"]}

IMPORTS: dict[str, Callable[[], ImportResult]] = {
    "004 school": lambda: import_heartbeat([F / "school", F / "school" / "drbd.conf"], "l", SCHOOL),
    "003 postgresql": lambda: import_heartbeat([F / "pg", F / "pg" / "drbd.conf"], "l", PG),
    "000 heartbeat 2": lambda: import_pacemaker(
        [F / "drbd07_hb2" / n for n in ("cib.xml", "ha.cf", "authkeys", "drbd.conf")], "l", HB2
    ),
    "001 pacemaker cib": lambda: import_pacemaker([F / "pcmk" / "cib.xml"], "l", PCMK),
    "001 crm": lambda: import_pacemaker([F / "pcmk" / "config.crm"], "l", PCMK),
    "002 rgmanager": lambda: import_rgmanager(
        F / "rhcs" / "cluster.conf", None, RHCS, {"192.168.7.99": 24}
    ),
    "drbd 8.3 includes": lambda: import_drbd(F / "pg" / "drbd.conf").result,
}


@pytest.mark.parametrize("name", IMPORTS)
def test_every_note_is_a_comment_of_the_yaml(name: str) -> None:
    result = IMPORTS[name]()
    text = render(result.documents, result.loose)
    written = len(re.findall(r"^\s*# (approximated|dropped)( \(|$)", text, flags=re.MULTILINE))
    notes = result.notes()
    assert notes, "an article's configuration always has something Vigil does differently"
    assert written == len(notes) == result.count("approximated") + result.count("dropped")

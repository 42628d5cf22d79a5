"""Fuzzing the Heartbeat and DRBD parsers: any input ends in a result or a clean error."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.importers.check import check_documents
from controller.importers.drbd import import_drbd
from controller.importers.emit import render
from controller.importers.heartbeat import import_heartbeat
from controller.importers.result import ImportFailed
from tests.unit.controller.importers.mutate import mutated

FIXTURES = Path(__file__).parent / "fixtures"
_HACF = (FIXTURES / "school" / "ha.cf").read_text() + "ucast eth0 10.0.0.2\nbaud 38400\n"
_HARESOURCES = (FIXTURES / "pg" / "haresources").read_text() + (
    FIXTURES / "school" / "haresources"
).read_text().replace("serv-a", "b")
_AUTHKEYS = (FIXTURES / "pg" / "authkeys").read_text()
_DRBD = (FIXTURES / "pg" / "drbd.d" / "pgdata.res").read_text() + (
    FIXTURES / "pg" / "drbd.d" / "global_common.conf"
).read_text()

_HB_WORDS = [
    "node",
    "a",
    "b",
    "keepalive",
    "deadtime",
    "warntime",
    "initdead",
    "2",
    "500ms",
    "x",
    "bcast",
    "ucast",
    "mcast",
    "serial",
    "baud",
    "eth0",
    "10.0.0.1",
    "10.0.0.2",
    "/dev/ttyS0",
    "19200",
    "2400",
    "auto_failback",
    "on",
    "off",
    "legacy",
    "crm",
    "IPaddr::10.0.0.9/24/eth0",
    "IPaddr2::10.0.0.9",
    "drbddisk::r0",
    "Filesystem::/dev/drbd0::/srv::ext4",
    "MailTo::root",
    "apache2",
    "10.0.0.8/24",
    "::",
    "\\",
    "#",
    "auth",
    "1",
    "sha1",
    "crc",
    "md5",
    "key",
    "Filesystem::LABEL=x::/m::xfs::ro",
    "fd00::9/64",
    "é",
    "\t",
    "stonith_host",
]
_DRBD_WORDS = [
    "resource",
    "r0",
    "on",
    "a",
    "b",
    "{",
    "}",
    ";",
    "device",
    "/dev/drbd0",
    "disk",
    "/dev/sdb1",
    "address",
    "10.0.0.1:7789",
    "10.0.0.2:7789",
    "meta-disk",
    "internal",
    "protocol",
    "C",
    "net",
    "syncer",
    "rate",
    "10M",
    "after-sb-0pri",
    "disconnect",
    "common",
    "global",
    "handlers",
    "fence-peer",
    '"x"',
    '"',
    "volume",
    "0",
    "minor",
    "1",
    "include",
    '"nothing/*.res"',
    "#",
    "\n",
    "floating",
    "connection-mesh",
    "hosts",
    "ipv4",
    "timeout",
    "60",
    "fencing",
    "resource-only",
    "on-io-error",
    "detach",
    "skip",
]


def _text(words: list[str]) -> st.SearchStrategy[str]:
    token = st.one_of(st.sampled_from(words), st.text(max_size=6))
    sep = st.sampled_from([" ", " ", "\n", "\n", ""])
    return st.lists(st.tuples(token, sep), max_size=40).map(
        lambda parts: "".join(t + s for t, s in parts)
    )


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(
    hacf=st.one_of(_text(_HB_WORDS), mutated(_HACF.replace("serv-", ""), _HB_WORDS)),
    haresources=st.one_of(_text(_HB_WORDS), mutated(_HARESOURCES.replace("pg1", "a"), _HB_WORDS)),
    authkeys=st.one_of(_text(_HB_WORDS), mutated(_AUTHKEYS, _HB_WORDS)),
)
def test_heartbeat_files_import_or_fail_cleanly(hacf: str, haresources: str, authkeys: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "ha.cf").write_text(hacf)
        (root / "haresources").write_text(haresources)
        (root / "authkeys").write_text(authkeys)
        try:
            result = import_heartbeat([root], "legacy", {"a": ["10.0.0.1"], "b": ["10.0.0.2"]})
            check_documents(result)
        except ImportFailed:
            return
        render(result.documents, result.loose)


@_SETTINGS
@given(text=st.one_of(_text(_DRBD_WORDS), mutated(_DRBD, _DRBD_WORDS)))
def test_drbd_conf_imports_or_fails_cleanly(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "drbd.conf"
        path.write_text(text)
        try:
            out = import_drbd(path)
            check_documents(out.result)
        except ImportFailed:
            return
        render(out.result.documents, out.result.loose)

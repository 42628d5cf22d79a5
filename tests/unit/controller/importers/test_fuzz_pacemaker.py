"""Fuzzing the CIB and crm readers: any input ends in a result or a clean error."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.importers.check import check_documents
from controller.importers.emit import render
from controller.importers.pacemaker import import_pacemaker
from controller.importers.result import ImportFailed
from tests.unit.controller.importers.mutate import mutated

_PCMK = Path(__file__).parent / "fixtures" / "pcmk"
_CIB = (_PCMK / "cib.xml").read_text().replace("node1", "a").replace("node2", "b")
_CRM_TEXT = (_PCMK / "config.crm").read_text().replace("node1", "a").replace("node2", "b")

_XML = [
    "<cib>",
    "</cib>",
    "<configuration>",
    "</configuration>",
    "<nodes>",
    "</nodes>",
    '<node id="1" uname="a"/>',
    '<node id="2" uname="b"/>',
    "<resources>",
    "</resources>",
    '<primitive id="p" class="ocf" provider="heartbeat" type="IPaddr2">',
    "</primitive>",
    '<primitive id="q" class="lsb" type="apache2"/>',
    '<group id="g">',
    "</group>",
    '<instance_attributes id="i">',
    "</instance_attributes>",
    '<nvpair id="n1" name="ip" value="10.0.0.9"/>',
    '<nvpair id="n2" name="cidr_netmask" value="24"/>',
    "<constraints>",
    "</constraints>",
    '<rsc_location id="l" rsc="p" node="a" score="INFINITY"/>',
    '<rsc_colocation id="c" rsc="q" with-rsc="g" score="-INFINITY"/>',
    '<rsc_order id="o" first="q" then="p"/>',
    '<master id="m">',
    "</master>",
    '<primitive id="d" class="ocf" provider="linbit" type="drbd"/>',
    "&amp;",
    "<!--",
    "-->",
    '<!DOCTYPE x [<!ENTITY e "y">]>',
    "&e;",
    '<op id="op" name="monitor" interval="x"/>',
    "<operations>",
    "</operations>",
]
_CRM = [
    "node a\n",
    "node b\n",
    "primitive p ocf:heartbeat:IPaddr2 params ip=10.0.0.9 cidr_netmask=24\n",
    "primitive q lsb:apache2\n",
    "group g p q\n",
    "ms m d\n",
    "primitive d ocf:linbit:drbd params drbd_resource=r0\n",
    "location l g 100: a\n",
    "colocation c inf: g m:Master\n",
    "order o inf: m:promote g:start\n",
    "property stonith-enabled=false\n",
    "fencing_topology a: p\n",
    "op monitor interval=x",
    "'",
    '"',
    "\\\n",
    "meta target-role=Stopped",
    " ",
    "rule",
    "#uname eq a",
]


def _strategy(words: list[str]) -> st.SearchStrategy[str]:
    token = st.one_of(st.sampled_from(words), st.text(max_size=5))
    return st.lists(token, max_size=30).map("".join)


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _run(text: str, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text)
        try:
            result = import_pacemaker([path], "legacy", {"a": ["10.0.0.1"], "b": ["10.0.0.2"]})
            check_documents(result)
        except ImportFailed:
            return
        render(result.documents, result.loose)


@_SETTINGS
@given(text=st.one_of(_strategy(_XML), mutated(_CIB, _XML)))
def test_cib_imports_or_fails_cleanly(text: str) -> None:
    _run(text, "cib.xml")


@_SETTINGS
@given(text=st.one_of(_strategy(_CRM), mutated(_CRM_TEXT, _CRM)))
def test_crm_imports_or_fails_cleanly(text: str) -> None:
    _run(text, "config.crm")

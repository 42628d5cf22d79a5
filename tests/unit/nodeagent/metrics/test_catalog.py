"""The catalog's naming rules, and docs/metrics.md listing exactly the catalog."""

from __future__ import annotations

import re
from pathlib import Path

from nodeagent.metrics import catalog

DOC = Path(__file__).parents[4] / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(vigil_\w+)` \| (\w+) \| ([^|]*) \| (.+) \|$")
UNITS = ("_seconds", "_bytes", "_total", "_info", "_bytes_per_second")


def documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    out = {}
    for line in DOC.read_text().splitlines():
        match = ROW.match(line)
        if match:
            name, kind, labels, _help = match.groups()
            assert name not in out, f"{name} listed twice"
            out[name] = (kind, tuple(re.findall(r"`(\w+)`", labels)))
    return out


def test_names_follow_prometheus_conventions() -> None:
    names = [m.name for m in catalog.ALL]
    assert len(names) == len(set(names))
    for m in catalog.ALL:
        assert m.name.startswith("vigil_"), m.name
        assert (m.kind == "counter") == m.name.endswith("_total"), m.name
        assert "_ms" not in m.name and "milliseconds" not in m.name, m.name
        assert m.help.endswith((".", ")")), m.name
        assert len(set(m.labels)) == len(m.labels), m.name
    # Durations and sizes in base units.
    for m in catalog.ALL:
        if m.kind == "histogram":
            assert m.name.endswith("_seconds"), m.name


def test_every_label_is_of_bounded_cardinality() -> None:
    bounded = {"node", "version", "peer", "link", "group", "resource", "volume", "device",
               "state", "phase", "role", "protocol", "action", "result", "reason", "op",
               "type"}  # fmt: skip
    for m in catalog.ALL:
        assert set(m.labels) <= bounded, m.name


def test_the_documentation_lists_exactly_the_catalog() -> None:
    expected = {m.name: (m.kind, m.labels) for m in catalog.ALL}
    assert documented() == expected

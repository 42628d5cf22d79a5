"""The YAML writer: what it writes reads back as the data, whatever the notes say."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.importers.emit import render
from controller.importers.result import Document, Note, Where

_SCALARS = st.one_of(st.text(max_size=12), st.integers(-(10**6), 10**6), st.booleans(), st.none())
_KEYS = st.text(min_size=1, max_size=8)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=5),
    text=st.text(max_size=40),
    pick=st.integers(0, 1000),
)
def test_rendered_yaml_reads_back_as_the_data_with_notes_anywhere(
    data: dict[str, Any], text: str, pick: int
) -> None:
    document = Document(data)
    paths = _paths(data)
    # Source text in a note may hold newlines or YAML of its own: it must stay a comment.
    note = Note("dropped", Where("f", 1), text + "\nkind: Injected", text)
    document.comment(paths[pick % len(paths)], note)
    document.comment(("not", "written"), note)
    rendered = render([document], [note])
    assert list(yaml.safe_load_all(rendered)) == [data]


def test_a_note_sits_above_its_element() -> None:
    document = Document({"spec": {"resources": [{"ip": {"address": "10.0.0.1/24"}}]}})
    document.comment(
        ("spec", "resources", 0), Note("approximated", Where("haresources", 3), "eth0:0", "why")
    )
    lines = render([document]).splitlines()
    assert lines == [
        "spec:",
        "  resources:",
        "    # approximated (haresources:3): eth0:0: why",
        "    - ip:",
        "        address: 10.0.0.1/24",
    ]

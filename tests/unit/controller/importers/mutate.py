"""Mutations of a valid configuration for the fuzz tests: near-valid input reaches every
stage of a parser, where random text stops at the first line."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def mutated(draw: st.DrawFn, base: str, words: list[str]) -> str:
    text = base
    for _ in range(draw(st.integers(0, 4))):
        if not text:
            break
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["delete", "insert", "word", "duplicate", "truncate"]))
        if kind == "delete":
            end = draw(st.integers(at, min(len(text), at + 40)))
            text = text[:at] + text[end:]
        elif kind == "insert":
            text = text[:at] + draw(st.text(max_size=6)) + text[at:]
        elif kind == "word":
            text = text[:at] + draw(st.sampled_from(words)) + text[at:]
        elif kind == "duplicate":
            end = draw(st.integers(at, min(len(text), at + 80)))
            text = text[:end] + text[at:end] + text[end:]
        else:
            text = text[:at]
    return text

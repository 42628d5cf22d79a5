"""YAML for imported documents, each note written as a comment above the element it is
about. The text is built here rather than by PyYAML because PyYAML cannot write comments;
scalars still go through PyYAML so that quoting is always right."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

from controller.importers.result import Document, Note, Path

# A note quotes source text, which is hostile input: a newline in it would end the comment
# and let the rest of the line become YAML.
# Everything but what YAML allows in a stream, and the characters that end a line.
_UNPRINTABLE = re.compile("[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_COMMENT_WIDTH = 96


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = yaml.safe_dump(str(value), default_flow_style=True, width=1 << 30)
    text = text.removesuffix("\n").removesuffix("\n...").strip()
    if "\n" in text:  # a line break in the value: one double-quoted line, escaped
        text = yaml.safe_dump(str(value), default_style='"', width=1 << 30).strip()
    return text


def comment_lines(note: Note, indent: int) -> list[str]:
    text = _UNPRINTABLE.sub(" ", note.text())
    words = text.split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        if current and len(current) + 1 + len(word) > _COMMENT_WIDTH:
            lines.append(current)
            current = "  " + word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    pad = " " * indent
    return [f"{pad}# {line}".rstrip() for line in lines]


class _Writer:
    def __init__(self, comments: dict[Path, list[Note]]) -> None:
        self.comments = comments
        self.used: set[Path] = set()

    def notes(self, path: Path, indent: int) -> list[str]:
        self.used.add(path)
        out: list[str] = []
        for note in self.comments.get(path, []):
            out.extend(comment_lines(note, indent))
        return out

    def node(self, value: Any, path: Path, indent: int) -> list[str]:
        if isinstance(value, dict):
            return self.mapping(value, path, indent)
        assert isinstance(value, list)
        return self.sequence(value, path, indent)

    def mapping(self, value: dict[str, Any], path: Path, indent: int) -> list[str]:
        pad = " " * indent
        out: list[str] = []
        for key, item in value.items():
            sub = (*path, key)
            out.extend(self.notes(sub, indent))
            if isinstance(item, dict | list) and item:
                out.append(f"{pad}{_scalar(key)}:")
                out.extend(self.node(item, sub, indent + 2))
            elif isinstance(item, dict):
                out.append(f"{pad}{_scalar(key)}: {{}}")
            elif isinstance(item, list):
                out.append(f"{pad}{_scalar(key)}: []")
            else:
                out.append(f"{pad}{_scalar(key)}: {_scalar(item)}")
        return out

    def sequence(self, value: list[Any], path: Path, indent: int) -> list[str]:
        pad = " " * indent
        out: list[str] = []
        for i, item in enumerate(value):
            sub = (*path, i)
            out.extend(self.notes(sub, indent))
            if isinstance(item, dict | list) and item:
                inner = self.node(item, sub, indent + 2)
                # The first element's own comments go above the dash, which then takes
                # the place of that element's indentation.
                first = next(j for j, line in enumerate(inner) if not line.lstrip().startswith("#"))
                out.extend(line[2:] for line in inner[:first])
                out.append(f"{pad}- {inner[first][indent + 2 :]}")
                out.extend(inner[first + 1 :])
            else:
                empty = "{}" if isinstance(item, dict) else "[]"
                out.append(f"{pad}- {empty if isinstance(item, dict | list) else _scalar(item)}")
        return out


def render_document(document: Document) -> str:
    writer = _Writer(document.comments)
    body = writer.mapping(document.data, (), 0)
    # A note whose element is not written (it was dropped) goes at the top of the document.
    leftover: list[str] = []
    for path in document.comments:
        if path not in writer.used:
            leftover.extend(writer.notes(path, 0))
    return "\n".join([*leftover, *body]) + "\n"


def render(documents: Sequence[Document], loose: Sequence[Note] = ()) -> str:
    parts: list[str] = []
    head: list[str] = []
    for note in loose:
        head.extend(comment_lines(note, 0))
    for i, document in enumerate(documents):
        text = render_document(document)
        if i == 0 and head:
            text = "\n".join(head) + "\n" + text
        parts.append(text)
    if not parts and head:
        return "\n".join(head) + "\n"
    return "---\n".join(parts)

"""Reading manifests: files, directories or stdin, multi-document YAML, with line numbers.

Every problem is reported against its file, document index and line, so that a
user with a twenty-document file knows exactly where to look.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from controller.api.errors import InputError

MAX_FILE_BYTES = 1 << 20
# libyaml's loader is about ten times faster and keeps the marks used for line numbers.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SUFFIXES = (".yaml", ".yml", ".json")

PathKey = tuple[str | int, ...]


@dataclass
class Document:
    """One YAML document of a manifest, with where each of its fields was written."""

    source: str
    index: int
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    item: int | None = None  # position in a `kind: List` document, as `ha get -o yaml` writes

    def line_of(self, path: PathKey) -> int | None:
        """The line of the deepest part of ``path`` that appears in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def where(self, path: PathKey = ()) -> str:
        line = self.line_of(path)
        location = f"{self.source}:{line}" if line else self.source
        item = f" item {self.item}" if self.item is not None else ""
        return f"{location}: document {self.index}{item}"

    def items(self) -> list[Document]:
        """The objects of a ``kind: List`` document, each with its own lines; else itself."""
        data = self.data
        if not (isinstance(data, dict) and data.get("kind") == "List"):
            return [self]
        items = data.get("items")
        if not isinstance(items, list):
            raise InputError(f"{self.where(('items',))}: a List needs `items:`, a list of objects")
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InputError(f"{self.where(('items', i))}: items[{i}] is not a mapping")
            prefix = ("items", i)
            lines = {k[2:]: v for k, v in self.lines.items() if k[:2] == prefix}
            out.append(Document(self.source, self.index, item, lines, i))
        return out


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], source: str) -> None:
    # A field's line is where its key is written, which a mapping value may not share.
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise InputError(
                    f"{source}:{key_node.start_mark.line + 1}: duplicate key {key!r} "
                    f"(first given on line {seen[key]}); keep one"
                )
            seen[key] = key_node.start_mark.line + 1
            lines[(*path, key)] = seen[key]
            _walk(value_node, (*path, key), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), lines, source)


def parse_text(text: str, source: str) -> list[Document]:
    """Split ``text`` into documents; empty documents (a trailing ``---``) are skipped."""
    loader = _Loader(text)
    documents: list[Document] = []
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            index += 1
            if node is None:
                continue
            lines: dict[PathKey, int] = {}
            _walk(node, (), lines, source)
            data = loader.construct_document(node)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise InputError(
                    f"{source}:{node.start_mark.line + 1}: document {index} is a "
                    f"{type(data).__name__}, not a mapping: each document must be one object "
                    "with apiVersion, kind, metadata and spec"
                )
            documents.extend(Document(source, index, data, lines).items())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "malformed YAML"
        raise InputError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return documents


def _read_limited(stream: IO[bytes], source: str) -> str:
    raw = stream.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(
            f"{source}: larger than {MAX_FILE_BYTES // 1024} KiB; split it into several files "
            "(ha apply -f accepts a directory)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source}: not UTF-8 text (byte {exc.start} is 0x{raw[exc.start]:02x})"
        ) from None


def _read_file(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"{path}: {size} bytes, larger than {MAX_FILE_BYTES // 1024} KiB; split it into "
                "several files (ha apply -f accepts a directory)"
            )
        with path.open("rb") as stream:
            return _read_limited(stream, str(path))
    except PermissionError:
        raise InputError(
            f"{path}: permission denied; check the file's mode or run as root"
        ) from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None


def _expand(target: str) -> list[Path]:
    path = Path(target)
    if path.is_dir():
        try:
            entries = sorted(p for p in path.iterdir() if p.suffix in SUFFIXES and p.is_file())
        except PermissionError:
            raise InputError(f"{path}: permission denied") from None
        if not entries:
            raise InputError(f"{path}: directory holds no {', '.join(SUFFIXES)} files")
        return entries
    if not path.exists() and not os.path.islink(target):
        raise InputError(f"{target}: no such file or directory")
    return [path]


def load(targets: Iterable[str], stdin: IO[bytes] | None = None) -> list[Document]:
    """Read every document of the given files, directories, or ``-`` for standard input."""
    documents: list[Document] = []
    for target in targets:
        if target == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            documents.extend(parse_text(_read_limited(stream, "<stdin>"), "<stdin>"))
            continue
        for path in _expand(target):
            documents.extend(parse_text(_read_file(path), str(path)))
    return documents

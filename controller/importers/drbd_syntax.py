"""drbd.conf's syntax, shared by DRBD 0.7, 8.3, 8.4 and 9: statements ending in `;`,
sections in braces, `include` lines followed (globs, relative to the including file)."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path

from controller.importers.result import ImportFailed, Where
from controller.importers.sources import read_text

MAX_INCLUDE_DEPTH = 8
MAX_FILES = 256
MAX_TOKENS = 200_000
MAX_NESTING = 16  # drbd.conf nests 3 deep (resource, on, volume); parsing recurses


@dataclass(frozen=True)
class Token:
    text: str
    where: Where
    quoted: bool = False


@dataclass
class Statement:
    """`keyword args...;` or, with ``children``, `keyword args... { ... }`."""

    keyword: str
    args: list[str]
    where: Where
    children: list[Statement] | None = None

    def sections(self, keyword: str) -> list[Statement]:
        return [c for c in self.children or [] if c.keyword == keyword]


def tokenize(text: str, file: str) -> list[Token]:
    tokens: list[Token] = []
    line = 1
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            tokens.append(Token(c, Where(file, line)))
            i += 1
        elif c == '"':
            start = line
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ImportFailed(
                    f"{file}:{start}: a quoted string is not closed: add the closing '\"' "
                    "(or the file is truncated)"
                )
            tokens.append(Token("".join(buf), Where(file, start), quoted=True))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in '{};#"':
                j += 1
            tokens.append(Token(text[i:j], Where(file, line)))
            i = j
        if len(tokens) > MAX_TOKENS:
            raise ImportFailed(f"{file}: more than {MAX_TOKENS} words: not a DRBD configuration")
    return tokens


@dataclass
class _Reader:
    files: list[Path] = field(default_factory=list)

    def read(self, path: Path, depth: int, stack: tuple[Path, ...]) -> list[Statement]:
        resolved = path.resolve()
        if resolved in stack:
            raise ImportFailed(f"{path}: includes itself (through {' -> '.join(map(str, stack))})")
        if depth > MAX_INCLUDE_DEPTH:
            raise ImportFailed(f"{path}: includes nested deeper than {MAX_INCLUDE_DEPTH} levels")
        self.files.append(path)
        if len(self.files) > MAX_FILES:
            raise ImportFailed(f"{path}: more than {MAX_FILES} included files")
        tokens = tokenize(read_text(path), str(path))
        statements, end = self._block(tokens, 0, None)
        if end != len(tokens):  # pragma: no cover - _block consumes all at top level
            raise tokens[end].where.fail("unexpected '}'")
        return self._expand(statements, path, depth, (*stack, resolved))

    def _expand(
        self, statements: list[Statement], path: Path, depth: int, stack: tuple[Path, ...]
    ) -> list[Statement]:
        out: list[Statement] = []
        for statement in statements:
            if statement.keyword != "include" or statement.children is not None:
                if statement.children is not None:
                    statement.children = self._expand(statement.children, path, depth, stack)
                out.append(statement)
                continue
            if len(statement.args) != 1:
                raise statement.where.fail(
                    'include takes one file pattern: include "drbd.d/*.res";'
                )
            pattern = statement.args[0]
            base = Path(pattern) if pattern.startswith("/") else path.parent / pattern
            # DRBD includes nothing for a pattern that matches nothing (an empty drbd.d).
            for match in sorted(glob.glob(str(base))):
                out.extend(self.read(Path(match), depth + 1, stack))
        return out

    def _block(
        self, tokens: list[Token], i: int, opened: Token | None, depth: int = 0
    ) -> tuple[list[Statement], int]:
        statements: list[Statement] = []
        words: list[Token] = []
        while i < len(tokens):
            token = tokens[i]
            if token.quoted:
                words.append(token)
            elif token.text == ";":
                if not words:
                    i += 1
                    continue
                statements.append(
                    Statement(words[0].text, [w.text for w in words[1:]], words[0].where)
                )
                words = []
            elif token.text == "{":
                if not words:
                    raise token.where.fail("a '{' with no section name before it")
                if depth >= MAX_NESTING:
                    raise token.where.fail(f"sections nested deeper than {MAX_NESTING} levels")
                children, i = self._block(tokens, i + 1, token, depth + 1)
                statements.append(
                    Statement(words[0].text, [w.text for w in words[1:]], words[0].where, children)
                )
                words = []
            elif token.text == "}":
                if opened is None:
                    raise token.where.fail("a '}' closes no section: remove it")
                if words:
                    raise words[0].where.fail(
                        f"`{' '.join(w.text for w in words)}` has no ';' at its end"
                    )
                return statements, i
            else:
                words.append(token)
            i += 1
        if opened is not None:
            raise opened.where.fail(
                "this section's '{' is never closed: add the '}' (or the file is truncated)"
            )
        if words:
            raise words[0].where.fail(
                f"`{' '.join(w.text for w in words)}` has no ';' at its end (or the file is "
                "truncated)"
            )
        return statements, i


def parse_drbd(path: Path) -> tuple[list[Statement], list[Path]]:
    """The statements of ``path`` with its includes in their place, and the files read."""
    reader = _Reader()
    return reader.read(path, 0, ()), reader.files

"""What an import produces: Vigil documents, notes beside their elements, and secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from controller.api.errors import InputError
from controller.api.meta import API_VERSION

Outcome = Literal["translated", "approximated", "dropped"]
Path = tuple[str | int, ...]


class ImportFailed(InputError):
    """A source file that cannot be imported; nothing is written (exit status 1)."""


@dataclass(frozen=True)
class Where:
    """A place in a source file, for notes and errors."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file

    def fail(self, message: str) -> ImportFailed:
        return ImportFailed(f"{self}: {message}")


@dataclass(frozen=True)
class Note:
    """One source element that was not translated exactly: what it was and why."""

    outcome: Outcome
    where: Where
    what: str
    why: str

    def text(self) -> str:
        return f"{self.outcome} ({self.where}): {self.what}: {self.why}"


@dataclass
class Document:
    """One Vigil object, with the notes to write as comments beside its elements."""

    data: dict[str, Any]
    comments: dict[Path, list[Note]] = field(default_factory=dict)
    source: Where | None = None  # where the element it comes from is written

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def name(self) -> str:
        return str(self.data["metadata"]["name"])

    def comment(self, path: Path, note: Note) -> None:
        self.comments.setdefault(path, []).append(note)


def new_document(
    kind: str, name: str, spec: dict[str, Any], source: Where | None = None
) -> Document:
    return Document(
        {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec},
        source=source,
    )


@dataclass
class ImportResult:
    """Everything an import made. ``translated`` counts elements carried over exactly;
    every other element has a Note, placed beside a document element or, when it belongs
    to none, in ``loose``."""

    documents: list[Document] = field(default_factory=list)
    loose: list[Note] = field(default_factory=list)
    secrets: dict[str, bytes] = field(default_factory=dict)
    translated: int = 0

    def note(self, note: Note, document: Document | None = None, path: Path = ()) -> None:
        if document is None:
            self.loose.append(note)
        else:
            document.comment(path, note)

    def ok(self, count: int = 1) -> None:
        self.translated += count

    def notes(self) -> list[Note]:
        out = list(self.loose)
        for document in self.documents:
            for notes in document.comments.values():
                out.extend(notes)
        return out

    def count(self, outcome: Outcome) -> int:
        return sum(1 for n in self.notes() if n.outcome == outcome)

    def find(self, kind: str, name: str) -> Document | None:
        return next((d for d in self.documents if d.kind == kind and d.name == name), None)

    def find_kind(self, kind: str) -> list[Document]:
        return [d for d in self.documents if d.kind == kind]

    def merge(self, other: ImportResult) -> None:
        self.documents.extend(other.documents)
        self.loose.extend(other.loose)
        self.secrets.update(other.secrets)
        self.translated += other.translated

"""Reading source files: a size limit, UTF-8 (or Latin-1, as old configs often are), and
logical lines with their numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.importers.result import ImportFailed, Where

# Real ha.cf, cib.xml or drbd.conf files are a few kilobytes; a CIB with history may reach
# a few hundred. Anything larger is not a configuration and is refused before parsing.
MAX_FILE_BYTES = 4 << 20


@dataclass(frozen=True)
class Line:
    where: Where
    text: str


def read_text(path: Path) -> str:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ImportFailed(f"{path}: cannot read it ({exc.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ImportFailed(
            f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB, which no configuration is: "
            "give the configuration file itself"
        )
    if b"\0" in raw:
        raise ImportFailed(f"{path}: a binary file (it holds NUL bytes), not a configuration")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def logical_lines(text: str, file: str, inline_comments: bool = True) -> list[Line]:
    """Lines without comments or blanks, backslash continuations joined (Heartbeat's rule);
    each keeps the number of its first physical line. Without ``inline_comments`` only a
    line starting with '#' is a comment (crm syntax writes `#uname`)."""
    out: list[Line] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if inline_comments:
            body = raw.split("#", 1)[0].rstrip()
        else:
            body = "" if raw.lstrip().startswith("#") else raw.rstrip()
        if not pending:
            start = number
        if body.endswith("\\"):
            pending.append(body[:-1])
            continue
        pending.append(body)
        joined = " ".join(part.strip() for part in pending).strip()
        pending = []
        if joined:
            out.append(Line(Where(file, start), joined))
    if pending and " ".join(pending).strip():
        raise ImportFailed(
            f"{file}:{start}: the file ends inside a line continued with '\\': "
            "the file is truncated, or remove the trailing backslash"
        )
    return out

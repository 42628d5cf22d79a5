"""Heartbeat's authkeys: the key is kept for the operator in a root-only file, never in YAML."""

from __future__ import annotations

from controller.importers.result import ImportResult, Note, Where
from controller.importers.sources import logical_lines

KEY_FILE = "authkeys.key"
_METHODS = ("crc", "md5", "sha1")


def import_authkeys(text: str, file: str, out: ImportResult) -> None:
    active: tuple[str, Where] | None = None
    keys: dict[str, tuple[str, str, Where]] = {}
    for line in logical_lines(text, file):
        words = line.text.split(None, 2)
        if words[0] == "auth":
            if len(words) != 2 or not words[1].isdigit():
                raise line.where.fail("`auth` takes the number of the key in use, e.g. `auth 1`")
            active = (words[1], line.where)
        elif words[0].isdigit():
            method = words[1].lower() if len(words) > 1 else ""
            if method not in _METHODS:
                raise line.where.fail(
                    f"key {words[0]}: method {method or '(none)'!r}: expected one of "
                    f"{', '.join(_METHODS)}"
                )
            if method != "crc" and len(words) < 3:
                raise line.where.fail(f"key {words[0]}: {method} needs a key after the method")
            keys[words[0]] = (method, words[2] if len(words) > 2 else "", line.where)
        else:
            raise line.where.fail(f"{words[0]!r}: expected `auth N` or `N method key`")
    if active is None:
        raise Where(file).fail("no `auth N` line: authkeys must say which key is in use")
    if active[0] not in keys:
        raise active[1].fail(f"auth {active[0]}: no key {active[0]} is defined below it")
    method, key, where = keys[active[0]]
    if method == "crc":
        why = (
            "crc authenticates nothing; Vigil always authenticates heartbeats (HMAC-SHA256 "
            "with the cluster key `ha cluster init` makes)"
        )
    else:
        out.secrets[KEY_FILE] = key.encode() + b"\n"
        why = (
            f"Vigil authenticates heartbeats with HMAC-SHA256 and the 32-byte cluster key "
            f"`ha cluster init` makes, not with this {method} key; the key was kept in "
            f"{KEY_FILE} (mode 0600), never in the YAML"
        )
    out.note(Note("approximated", where, f"authkeys key {active[0]} ({method})", why))

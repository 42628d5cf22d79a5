"""Reading a fence device's credentials from its root-only file.

Secrets never come from the store: a `FenceDevice` names a file (`credentialsFile`) on
each node that may run the fence. The file holds a bare password, or `username=` and
`password=` lines. It is refused when group or others may read or write it, or when root
does not own it: a secret anyone can read is not a secret, and a file anyone can write
lets them point the fence at the wrong machine. Nothing here ever puts the password into
an error message.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

KEYS = ("username", "password")
MAX_BYTES = 64 * 1024


class CredentialsError(Exception):
    """The file cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Credentials:
    username: str | None
    # repr=False: a credential printed by a debug log or a traceback stays hidden.
    password: str = field(repr=False)


def check_ownership(path: str, mode: int, uid: int) -> None:
    """Refuse a file group or others may touch, or one root does not own (pure)."""
    if not stat.S_ISREG(mode):
        raise CredentialsError(
            f"credentials file {path} is not a regular file; point credentialsFile at a file"
        )
    if uid != 0:
        raise CredentialsError(
            f"credentials file {path} is owned by uid {uid}, not root; run `chown root:root {path}`"
        )
    if mode & 0o077:
        raise CredentialsError(
            f"credentials file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )


def parse(text: str, path: str) -> Credentials:
    """A bare password, or `username=` / `password=` lines (`#` comments allowed)."""
    lines = [ln.strip() for ln in text.splitlines()]
    keyed = any(ln.split("=", 1)[0].strip() in KEYS for ln in lines if "=" in ln)
    if not keyed:
        password = text.rstrip("\r\n")
        if not password.strip() or "\n" in password:
            raise CredentialsError(
                f"credentials file {path} holds no password: write the password alone, "
                "or `username=...` and `password=...` lines"
            )
        return Credentials(username=None, password=password)
    found: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in KEYS:
            # The line itself is not quoted: it may be a mistyped secret.
            raise CredentialsError(
                f"credentials file {path} line {number}: expected `username=...` or `password=...`"
            )
        if key in found:
            raise CredentialsError(f"credentials file {path} line {number}: {key} given twice")
        found[key] = value.strip()
    if not found.get("password"):
        raise CredentialsError(
            f"credentials file {path} has no `password=` line (or it is empty); add one"
        )
    return Credentials(username=found.get("username") or None, password=found["password"])


def load(path: str) -> Credentials:
    """Open, check (on the open file, so a swap between check and read cannot fool it)
    and parse the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise CredentialsError(
            f"credentials file {path} does not exist on this node; create it (root-only, "
            "chmod 600) on every node that may fence"
        ) from None
    except OSError as exc:
        raise CredentialsError(
            f"credentials file {path} cannot be opened ({exc.strerror}); it must be a "
            "regular root-owned file, not a symlink"
        ) from None
    try:
        st = os.fstat(fd)
        check_ownership(path, st.st_mode, st.st_uid)
        raw = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise CredentialsError(f"credentials file {path} is larger than {MAX_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"credentials file {path} is not UTF-8 text") from None
    return parse(text, path)


def redact(text: str, *secrets: str | None) -> str:
    """`text` with every secret replaced, for messages built from a tool's output."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text

"""Errors the CLI turns into one clear message and an exit status."""

from __future__ import annotations

# Exit statuses of `ha`, documented in docs/cli.md; scripts may rely on them.
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_CONFLICT = 4
EXIT_NOT_FOUND = 5


class VigilError(Exception):
    """An error meant for the user: its text says what failed and what to do."""

    exit_code = EXIT_INVALID

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def __str__(self) -> str:
        return "\n".join([self.message, *self.details])


class InputError(VigilError):
    """A file, document or field the user gave is wrong; nothing was changed."""


class NotFoundError(VigilError):
    exit_code = EXIT_NOT_FOUND


class ConflictingChangeError(VigilError):
    exit_code = EXIT_CONFLICT


class UnavailableError(VigilError):
    exit_code = EXIT_UNAVAILABLE

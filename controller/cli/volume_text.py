"""Moved to ``controller/status/volume_text.py`` (the node agent's status page uses it
too, and may not import the CLI); these names stay importable from here."""

from controller.status.volume_text import (
    NONE,
    control_socket,
    human_bytes,
    human_seconds,
    replica_columns,
    resolve_command,
    sync_text,
)

__all__ = [
    "NONE",
    "control_socket",
    "human_bytes",
    "human_seconds",
    "replica_columns",
    "resolve_command",
    "sync_text",
]

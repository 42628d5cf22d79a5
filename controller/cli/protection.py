"""Moved to ``controller/status/protection.py`` (part of the status document the node
agent serves, which may not import the CLI); these names stay importable from here."""

from controller.status.protection import ENFORCED, Protection, protection

__all__ = ["ENFORCED", "Protection", "protection"]

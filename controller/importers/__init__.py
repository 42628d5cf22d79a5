"""Importers of legacy cluster configurations (Heartbeat, DRBD, Pacemaker, rgmanager).

Each parser is pure but for reading the files it is given: it returns an ``ImportResult``
(Vigil documents, a note for every element not translated exactly, and secrets that must
never reach the YAML), or raises ``ImportFailed`` naming the file, the line and the fix.
"""

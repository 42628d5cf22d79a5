"""The one exception type the lab raises for anything the user can fix."""


class LabError(RuntimeError):
    """A lab operation failed; the message says what and how to fix it."""

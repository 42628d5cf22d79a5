"""Replicated volumes on this node: the blockrepl replica of every ReplicatedVolume that
names this node runs here, supervised (`supervisor.py`), started with a command line built
from the spec (`command.py`, pure), and reported into the volume's status (`status.py`)."""

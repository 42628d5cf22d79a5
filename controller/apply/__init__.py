"""``ha apply`` / ``ha delete``: plan a change of desired state, validate it, commit it at once."""

"""The node reconciler: converge this node's resources toward the placements."""

"""The elected controller role: one node's agent leads (election.py) and, while it leads,
runs the leader's loop (loop.py) that writes placements from the pure decision
(decide.py). It never touches a machine: the node agents converge their own nodes."""

"""Direct heartbeats between node agents: wire format, membership and serving lease, I/O."""

"""The read-only status page every agent serves beside /metrics (docs/web.md)."""

"""The agent's Prometheus endpoint: what it exports (`catalog.py`), where it is measured
(`instruments.py` at the event sites, `collector.py` at scrape time), and how it is served
(`server.py`, `webconfig.py`). docs/metrics.md lists every metric."""

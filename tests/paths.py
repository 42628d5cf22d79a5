"""Where the repository's own files are, for tests at any depth of tests/."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "deploy" / "examples"
# The seed scenario as this version runs it (see its 01-cluster.yaml).
PG_TODAY = REPO / "tests" / "manifests" / "pg-witness"

"""`ha apply --dry-run` of imported YAML, against an in-memory store."""

from __future__ import annotations

import asyncio

from controller.api.manifest import parse_text
from controller.apply.plan import decode_documents
from controller.apply.run import apply_objects
from controller.store.memory import MemoryStore


def dry_run(text: str, cluster: str = "legacy") -> list[str]:
    """The objects the dry run would create; raises InputError as `ha apply` reports it."""
    applied = decode_documents(parse_text(text, "imported.yaml"))

    async def run() -> list[str]:
        outcome = await apply_objects(MemoryStore(cluster), applied, cluster=cluster, dry_run=True)
        return [str(change.ref) for change in outcome.plan.changes]

    return asyncio.run(run())


def fences(*nodes: str) -> str:
    """A FenceDevice per node: what the import's notes ask the operator to add."""
    return "".join(
        f"---\napiVersion: ha.vigil.dev/v1alpha1\nkind: FenceDevice\nmetadata: {{name: bmc-{n}}}\n"
        f"spec: {{agent: ipmi, targets: [{n}], address: 10.9.9.{i + 1}, "
        f"credentialsFile: /etc/vigil/secrets/bmc-{n}}}\n"
        for i, n in enumerate(nodes)
    )


def comments(text: str) -> str:
    """The YAML's comments as one line of text (the emitter wraps long notes)."""
    return " ".join(
        line.strip().removeprefix("#").strip()
        for line in text.splitlines()
        if line.lstrip().startswith("#")
    )

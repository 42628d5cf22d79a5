"""Running `ha` against the session's real etcd, in-process or as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.cli.main import main
from controller.store.etcd import EtcdStore

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "deploy" / "examples"
HA = str(Path(sys.executable).parent / "ha")


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    endpoint: str
    cluster: str

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "VIGIL_ENDPOINTS": self.endpoint,
            "VIGIL_CLUSTER": self.cluster,
            "VIGIL_CONFIG": "/dev/null",
            "NO_COLOR": "1",
        }

    def __call__(self, *args: str, stdin: bytes = b"") -> Result:
        out, err = io.StringIO(), io.StringIO()
        saved = {k: os.environ.get(k) for k in ("VIGIL_ENDPOINTS", "VIGIL_CLUSTER", "VIGIL_CONFIG")}
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("VIGIL_")})
        fake_stdin = io.TextIOWrapper(io.BytesIO(stdin))
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                old_stdin, sys.stdin = sys.stdin, fake_stdin
                try:
                    code = main(list(args))
                except SystemExit as exc:  # argparse usage errors
                    code = int(exc.code or 0)
                finally:
                    sys.stdin = old_stdin
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return Result(code, out.getvalue(), err.getvalue())

    def revision(self) -> int:
        async def read() -> int:
            async with EtcdStore([self.endpoint], self.cluster) as store:
                return await store.revision()

        return asyncio.run(read())


def new_cluster_name() -> str:
    return f"c{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def cli_for(endpoint: str, cluster: str | None = None) -> Iterator[Cli]:
    yield Cli(endpoint, cluster or new_cluster_name())

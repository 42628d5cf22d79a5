"""A client that commits numbered transactions through the VIP without pause, and says
which commits PostgreSQL acknowledged. Run in the lab's client namespace:

    python -m lab.pg_client HOST [--port 5432] [--start N]

Each line on stdout is `<monotonic time> ok <n>` once the COMMIT of row n returned, or
`<monotonic time> err <n> <reason>` when it did not (n's fate is then unknown: the server
may have committed it before the answer was lost, so it is never counted either way), or
`<monotonic time> down <reason>` for a connection attempt that failed, or `<monotonic
time> conn <server>` for a new connection, <server> telling PostgreSQL instances apart
(their start time). After an error the client connects again and goes on with n + 1.
The lab makes no time namespace, so the times compare with the test's time.monotonic().
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from typing import Any

import psycopg

# Short tries: while the VIP moves, a connection attempt that went to the dead node is
# given up soon and made again, so the first commit on the new node is seen at once.
CONNECT_TIMEOUT = 0.5
# A statement that gets no answer (the server's node lost power mid-commit) is given up
# after this; a healthy commit takes milliseconds, a loaded one rarely near a second.
STATEMENT_TIMEOUT = 1.0
# An abandoned connection's socket gives up by itself this soon (libpq's TCP settings).
SOCKET_GIVES_UP_MS = 3000
TABLE = "CREATE TABLE IF NOT EXISTS commits (n bigint PRIMARY KEY, at timestamptz DEFAULT now())"

Conn = psycopg.AsyncConnection[tuple[object, ...]]
# Statements given up on, kept referenced until their socket fails: cancelling one would
# make psycopg send a cancel request to the dead server and wait for it, seconds during
# which this client would measure nothing.
abandoned: set[asyncio.Future[Any]] = set()


def say(*parts: object) -> None:
    print(f"{time.monotonic():.4f}", *parts, flush=True)


def reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _forget(task: asyncio.Future[Any]) -> None:
    abandoned.discard(task)
    if not task.cancelled():
        task.exception()  # retrieved: no "exception never retrieved" warning


async def bounded(conn: Conn, sql: str, params: tuple[object, ...] = ()) -> Any:
    """Run sql, or give it up (not cancel it) after STATEMENT_TIMEOUT; the cursor."""
    task: asyncio.Future[Any] = asyncio.ensure_future(conn.execute(sql, params))
    done, _ = await asyncio.wait({task}, timeout=STATEMENT_TIMEOUT)
    if not done:
        abandoned.add(task)
        task.add_done_callback(_forget)
        raise TimeoutError(f"no answer within {STATEMENT_TIMEOUT:g} s")
    return task.result()


async def close(conn: Conn) -> None:
    """Close a connection whose statement ended (with an error): nothing waits on it."""
    with contextlib.suppress(TimeoutError, psycopg.Error, OSError):
        async with asyncio.timeout(0.2):
            await conn.close()


async def connect(host: str, port: int) -> Conn:
    async with asyncio.timeout(CONNECT_TIMEOUT):
        conn = await psycopg.AsyncConnection.connect(
            host=host,
            port=port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            keepalives=1,
            keepalives_idle=1,
            keepalives_interval=1,
            keepalives_count=2,
            tcp_user_timeout=SOCKET_GIVES_UP_MS,
        )
    await bounded(conn, TABLE)
    cur = await bounded(conn, "SELECT pg_postmaster_start_time()::text")
    row = await cur.fetchone()
    # Which server answers from now on: a PostgreSQL started elsewhere after a failover has
    # another start time, however the VIP moved.
    say("conn", str(row[0] if row else "?").replace(" ", "T"))
    return conn


async def run(host: str, port: int, start: int, count: int | None) -> None:
    n = start
    conn: Conn | None = None
    while count is None or n < start + count:
        if conn is None:
            try:
                conn = await connect(host, port)
            except (TimeoutError, psycopg.Error, OSError) as exc:
                say("down", reason(exc))
                await asyncio.sleep(0.02)
                continue
        try:
            await bounded(conn, "INSERT INTO commits (n) VALUES (%s)", (n,))
            say("ok", n)
        except TimeoutError as exc:
            say("err", n, reason(exc))
            conn = None  # not closed: its statement still waits on the socket
        except (psycopg.Error, OSError) as exc:
            say("err", n, reason(exc))
            await close(conn)
            conn = None
        n += 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="pg_client", description=__doc__.splitlines()[0])
    ap.add_argument("host")
    ap.add_argument("--port", type=int, default=5432)
    ap.add_argument("--start", type=int, default=1, help="first row number")
    ap.add_argument("--count", type=int, help="stop after this many (default: never)")
    args = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args.host, args.port, args.start, args.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``blockrepl`` command line: metadata tools and a local (peer-less) NBD server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import sys
from typing import Any

from blockrepl.diskerror import parse_on_io_error
from blockrepl.errors import BlockReplError
from blockrepl.generation import MdFlag
from blockrepl.layout import AL_DEFAULT_EXTENTS, BM_BYTES_PER_BIT, MdKind
from blockrepl.metadata import MetadataStore
from blockrepl.nbd.server import HANDSHAKE_TIMEOUT

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class UsageError(BlockReplError):
    pass


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise UsageError(f"--size {text!r}: use a number with an optional K/M/G/T suffix")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def _meta(args: argparse.Namespace) -> tuple[str, MdKind, str | None]:
    """(metadata path, kind, data path for external)."""
    if args.meta in (None, "internal"):
        return args.backing, MdKind.INTERNAL, None
    return args.meta, MdKind.EXTERNAL, args.backing


def _load(args: argparse.Namespace, writable: bool = False) -> MetadataStore:
    path, kind, data = _meta(args)
    return MetadataStore.load(path, kind, data, writable=writable)


def cmd_create_md(args: argparse.Namespace) -> int:
    backing = args.backing
    if args.size is not None:
        size = parse_size(args.size)
        if os.path.exists(backing) and not os.path.isfile(backing):
            raise UsageError(f"--size only applies to regular files; {backing} is a device")
        with open(backing, "ab") as f:
            if f.tell() < size:
                f.truncate(size)
    elif not os.path.exists(backing):
        raise UsageError(f"{backing} does not exist: create it, or pass --size to create a file")
    path, kind, data = _meta(args)
    if kind is MdKind.EXTERNAL and not os.path.exists(path):
        open(path, "wb").close()
    md = MetadataStore.create(path, kind, data, al_extents=args.al_extents, force=args.force)
    print(f"created {kind.name.lower()} metadata on {path}: {md.data_size} usable bytes")
    md.close_fd()
    return 0


def describe(md: MetadataStore) -> dict[str, Any]:
    sb, g = md.sb, md.geometry
    return {
        "metadata": md.path,
        "kind": g.kind.name.lower(),
        "device_uuid": str(sb.device_uuid),
        "data_size": g.data_size,
        "backing_size": sb.backing_size,
        "md_offset": g.md_offset,
        "md_size": g.md_size,
        "bytes_per_bit": BM_BYTES_PER_BIT,
        "al_extents": g.al_extents,
        "sequence": sb.seq,
        "generation": {
            "current": f"{sb.generation.current:016X}",
            "bitmap": f"{sb.generation.bitmap:016X}",
            "history": [f"{sb.generation.history1:016X}", f"{sb.generation.history2:016X}"],
        },
        "flags": [f.name for f in MdFlag if f.name and sb.flags & f],
        "clean_shutdown": md.clean,
        "active_extents": md.al_extents,
        "dirty_bits": md.bitmap.count(),
        "dirty_bytes": md.bitmap.count() * BM_BYTES_PER_BIT,
        "warnings": md.warnings,
    }


def cmd_show_md(args: argparse.Namespace) -> int:
    md = _load(args)
    try:
        info = describe(md)
    finally:
        md.close_fd()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0


def cmd_dump_bitmap(args: argparse.Namespace) -> int:
    md = _load(args)
    try:
        runs = [
            {
                "first_block": b,
                "blocks": n,
                "offset": b * BM_BYTES_PER_BIT,
                "length": n * BM_BYTES_PER_BIT,
            }
            for b, n in md.bitmap.runs()
        ]
        total = md.bitmap.count()
    finally:
        md.close_fd()
    if args.json:
        print(json.dumps({"bytes_per_bit": BM_BYTES_PER_BIT, "dirty_bits": total, "runs": runs}))
    else:
        print(f"# {total} dirty 4 KiB blocks")
        for r in runs:
            print(f"{r['offset']}+{r['length']}")
    return 0


def _parse_listen(text: str, option: str = "--listen") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UsageError(f"{option} {text!r}: use HOST:PORT, e.g. 127.0.0.1:10809")
    return host.strip("[]"), int(port)


def cmd_serve(args: argparse.Namespace) -> int:
    listens = [_parse_listen(x) for x in args.listen or []]
    if args.peer or args.listen_repl:
        return asyncio.run(_serve_replicated(args, listens))
    if not args.unix and not args.listen:
        raise UsageError("serve needs --unix SOCK and/or --listen HOST:PORT")
    if args.metrics_listen:
        raise UsageError("--metrics-listen needs replication: add --peer and/or --listen-repl")
    return asyncio.run(_serve(args, listens))


async def _serve_replicated(args: argparse.Namespace, listens: list[tuple[str, int]]) -> int:
    from blockrepl.replication.node import ReplConfig
    from blockrepl.replication.outdate_cli import build_outdater
    from blockrepl.replication.outdate_cli import config_from_args as outdate_config
    from blockrepl.replication.serve import read_secret, serve_replicated
    from blockrepl.replication.splitbrain_cli import config_from_args as sb_config
    from blockrepl.replication.tls import config_from_args as tls_config

    if not args.secret_file:
        raise UsageError("--peer/--listen-repl need --secret-file F (the volume's shared secret)")
    if args.csums_after_crash_only and not args.csums:
        raise UsageError("--csums-after-crash-only restricts --csums: add --csums as well")
    if args.listen_repl and not args.peer and not args.allow_peer:
        raise UsageError(
            "--listen-repl without --peer needs --allow-peer HOST: the address the peer "
            "connects from (connections from any other address are closed)"
        )
    cfg = ReplConfig(
        volume=args.volume or args.export_name,
        secret=read_secret(args.secret_file),
        protocol=args.protocol,
        listen=_parse_listen(args.listen_repl, "--listen-repl") if args.listen_repl else None,
        peer=_parse_listen(args.peer, "--peer") if args.peer else None,
        allow_peers=tuple(h.strip("[]") for h in args.allow_peer or ()),
        ping_interval=args.ping_interval,
        timeout=args.timeout,
        resync_rate=parse_size(args.resync_rate),
        csums=args.csums,
        csums_after_crash_only=args.csums_after_crash_only,
        on_io_error=parse_on_io_error(args.on_io_error),
        **sb_config(args),
        **outdate_config(args),
        tls=tls_config(args),
    )
    outdater = build_outdater(args, args.peer or "")
    md = _load(args, writable=True)
    try:
        return await serve_replicated(
            md,
            args.backing,
            cfg,
            args.role,
            args.force,
            args.export_name,
            args.unix or [],
            listens,
            args.control or args.backing + ".ctl",
            lambda: _write_pidfile(args.pidfile) if args.pidfile else None,
            metrics_listen=_parse_listen(args.metrics_listen, "--metrics-listen")
            if args.metrics_listen
            else None,
            outdater=outdater,
            handshake_timeout=args.nbd_handshake_timeout,
        )
    except BaseException:
        md.close_fd()
        raise


def cmd_control(args: argparse.Namespace) -> int:
    from blockrepl.replication.control import request

    extra: dict[str, Any] = {"force": True} if getattr(args, "force", False) else {}
    timeout = 30.0
    if args.command == "demote" and args.wait is not None:
        extra["wait"] = args.wait
        timeout += args.wait
    answer = request(args.control, args.command, timeout=timeout, **extra)
    if not answer.get("ok"):
        raise UsageError(f"{args.command} refused: {answer.get('error')}")
    st = answer["status"]
    if args.command == "status" and getattr(args, "output", None) == "prometheus":
        from blockrepl.metrics import render

        print(render(st), end="")
    elif args.command == "status" and not args.json and args.output != "json":
        for key, value in st.items():
            print(f"{key}: {value}")
    else:
        print(json.dumps(st, indent=2))
    return 0


async def _serve(args: argparse.Namespace, listens: list[tuple[str, int]]) -> int:
    from blockrepl.localdisk import LocalDiskBackend
    from blockrepl.nbd.server import Export, NbdServer

    md = _load(args, writable=True)
    try:
        md.attach()
        md.promote(peer_connected=False, force=args.force)
    except BaseException:
        md.close_fd()
        raise
    backend = LocalDiskBackend(md, args.backing, on_io_error=parse_on_io_error(args.on_io_error))
    server = NbdServer(
        [Export(args.export_name, backend)], handshake_timeout=args.nbd_handshake_timeout
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for sock in args.unix or []:
            await server.listen_unix(sock)
            print(f"serving {args.export_name!r} ({backend.size} bytes) on unix:{sock}", flush=True)
        for host, port in listens:
            bound = await server.listen_tcp(host, port)
            print(
                f"serving {args.export_name!r} ({backend.size} bytes) on {host}:{bound}", flush=True
            )
        if args.pidfile:
            _write_pidfile(args.pidfile)
        await stop.wait()
    finally:
        await server.stop()
        await backend.close(clean=True)
        for sock in args.unix or []:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(sock)
    return 0


def _write_pidfile(path: str) -> None:
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\n")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="blockrepl", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    def volume(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backing", required=True, help="backing file or block device")
        p.add_argument(
            "--meta",
            default="internal",
            help="'internal' (default: at the end of the backing device) or a metadata file path",
        )

    p = sub.add_parser("create-md", help="write fresh metadata")
    volume(p)
    p.add_argument("--size", help="create/extend the backing FILE to this size (e.g. 64M)")
    p.add_argument("--al-extents", type=int, default=AL_DEFAULT_EXTENTS)
    p.add_argument("--force", action="store_true", help="overwrite existing metadata")
    p.set_defaults(func=cmd_create_md)

    p = sub.add_parser("show-md", help="print the superblock, flags and counts")
    volume(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show_md)

    p = sub.add_parser("dump-bitmap", help="print the dirty ranges")
    volume(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_dump_bitmap)

    p = sub.add_parser("serve", help="serve the volume over NBD as Primary without a peer")
    volume(p)
    p.add_argument("--unix", action="append", metavar="SOCK")
    p.add_argument("--listen", action="append", metavar="HOST:PORT")
    p.add_argument("--export-name", default="blockrepl")
    p.add_argument("--force", action="store_true", help="promote an Inconsistent (new) disk")
    p.add_argument(
        "--on-io-error",
        choices=["detach", "pass_on"],
        default="detach",
        help="backing-disk I/O error: detach (go Diskless, serve via the peer; default) "
        "or pass_on (EIO for that request, stay attached)",
    )
    p.add_argument(
        "--nbd-handshake-timeout",
        type=float,
        default=HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help="an NBD client that has not chosen an export by then is disconnected "
        f"(default {HANDSHAKE_TIMEOUT:g})",
    )
    p.add_argument("--pidfile")
    p.add_argument("-v", "--verbose", action="store_true")
    r = p.add_argument_group("replication (any of --peer/--listen-repl enables it)")
    r.add_argument("--peer", metavar="HOST:PORT", help="the other replica's --listen-repl")
    r.add_argument("--listen-repl", metavar="HOST:PORT", help="accept the peer here")
    r.add_argument(
        "--allow-peer",
        action="append",
        metavar="HOST",
        help="also accept the peer's link from HOST (repeatable; --peer's HOST is always "
        "accepted, others are closed at once; required with --listen-repl without --peer)",
    )
    r.add_argument("--secret-file", metavar="F", help="shared secret of the volume")
    r.add_argument("--protocol", choices=["A", "B", "C"], default="C")
    r.add_argument("--role", choices=["primary", "secondary"], default="secondary")
    r.add_argument("--volume", help="volume name both replicas must agree on (default: export)")
    r.add_argument("--control", metavar="SOCK", help="control socket (default: BACKING.ctl)")
    r.add_argument("--timeout", type=float, default=5.0, help="peer declared gone after (s)")
    r.add_argument("--ping-interval", type=float, default=1.0)
    r.add_argument("--resync-rate", default="100M", help="resync bytes/s (0 = unlimited)")
    r.add_argument(
        "--csums",
        action="store_true",
        help="checksum resync (as sync source): send digests first, data only where they differ",
    )
    r.add_argument(
        "--csums-after-crash-only",
        action="store_true",
        help="use --csums only for the first resync after a Primary crashed",
    )
    from blockrepl.replication import outdate_cli, splitbrain_cli, tls

    splitbrain_cli.add_serve_options(r)
    outdate_cli.add_serve_options(
        p.add_argument_group("peer outdating (DRBD's resource-level fencing)")
    )
    tls.add_serve_options(p.add_argument_group("TLS on the replication link (all three or none)"))
    r.add_argument(
        "--metrics-listen", metavar="HOST:PORT", help="serve Prometheus GET /metrics here"
    )
    p.set_defaults(func=cmd_serve)

    for name, text in (
        ("status", "role, connection, disk state, sync progress of a running replica"),
        ("promote", "make the replica Primary"),
        ("demote", "make the replica Secondary"),
        ("outdate", "mark a disconnected Secondary Outdated (what a fence-peer handler runs)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--control", required=True, metavar="SOCK")
        if name == "status":
            p.add_argument("--json", action="store_true")
            p.add_argument(
                "-o",
                "--output",
                choices=["text", "json", "prometheus"],
                default="text",
                help="prometheus: text exposition format 0.0.4, as served on /metrics",
            )
        if name == "promote":
            p.add_argument("--force", action="store_true", help="promote an Inconsistent disk")
        if name == "demote":
            p.add_argument(
                "--wait",
                type=float,
                metavar="SECONDS",
                help="wait this long for attached NBD clients to go before refusing "
                "(default 1; a demote is refused while a client holds the device open)",
            )
        p.set_defaults(func=cmd_control)
    from blockrepl.replication.verify_cli import add_parser as add_verify

    add_verify(sub)
    splitbrain_cli.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="blockrepl: %(levelname)s %(message)s",
    )
    try:
        return int(args.func(args))
    except BlockReplError as exc:
        print(f"blockrepl: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"blockrepl: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

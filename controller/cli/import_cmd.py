"""``ha import``: legacy Heartbeat, DRBD, Pacemaker and rgmanager configurations as Vigil
YAML, a comment beside every element not translated exactly."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from controller.api.decode import decode
from controller.api.errors import EXIT_INVALID, InputError
from controller.apply.validation import validate_state
from controller.cli.output import err
from controller.importers.result import ImportResult

_DEFAULT_CLUSTER = "legacy"


def _addresses(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values:
        node, sep, ips = value.partition("=")
        if not sep or not node or not ips:
            raise InputError(
                f"--address {value!r}: expected NODE=IP, or NODE=IP,IP2 for a second "
                "heartbeat network"
            )
        out[node] = [ip.strip() for ip in ips.split(",") if ip.strip()]
    return out


def _cluster_name(args: argparse.Namespace) -> str:
    return str(
        args.cluster_name
        or getattr(args, "cluster", None)
        or os.environ.get("VIGIL_CLUSTER")
        or _DEFAULT_CLUSTER
    )


# The importers are loaded by the command that runs them: every other `ha` command starts
# without them (and without defusedxml).


def _run_heartbeat(args: argparse.Namespace) -> ImportResult:
    from controller.importers.heartbeat import import_heartbeat

    return import_heartbeat(
        [Path(p) for p in args.paths], _cluster_name(args), _addresses(args.address)
    )


def _run_pacemaker(args: argparse.Namespace) -> ImportResult:
    from controller.importers.pacemaker import import_pacemaker

    return import_pacemaker(
        [Path(p) for p in args.paths], _cluster_name(args), _addresses(args.address)
    )


def _prefixes(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        address, sep, length = value.partition("/")
        if not sep or not length.isdigit():
            raise InputError(f"--prefix {value!r}: expected ADDRESS/LENGTH, e.g. 10.0.0.9/24")
        out[address] = int(length)
    return out


def _run_rgmanager(args: argparse.Namespace) -> ImportResult:
    from controller.importers.rgmanager import import_rgmanager

    explicit = (
        args.cluster_name or getattr(args, "cluster", None) or os.environ.get("VIGIL_CLUSTER")
    )
    return import_rgmanager(
        Path(args.paths[0]), explicit, _addresses(args.address), _prefixes(args.prefix)
    )


def _run_drbd(args: argparse.Namespace) -> ImportResult:
    from controller.importers.drbd import import_drbd

    return import_drbd(Path(args.paths[0])).result


def _refusals(result: ImportResult) -> list[str]:
    """What `ha apply` would still refuse in the imported objects taken alone."""
    objects = {(d.kind, d.name): decode(d.data) for d in result.documents}
    return [
        f"{f.kind}/{f.name}: {f.problem.dotted}: {f.problem.message}"
        for f in validate_state(objects)
    ]


def _write_private(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def _check_output_dir(directory: Path) -> None:
    # Files of an earlier import left beside new ones would be applied with them.
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise InputError(f"-o {directory}: exists and is not an empty directory: give a new one")


def _write(result: ImportResult, directory: Path) -> list[Path]:
    from controller.importers.emit import render

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for i, document in enumerate(result.documents):
        text = render([document], result.loose if i == 0 else ())
        path = directory / f"{i:02d}-{document.kind.lower()}-{document.name}.yaml"
        path.write_text(text)
        written.append(path)
    for name, data in result.secrets.items():
        path = directory / name
        _write_private(path, data)
        written.append(path)
    return written


def _summary(result: ImportResult, source: str) -> None:
    err(
        f"ha import {source}: {result.translated} translated, "
        f"{result.count('approximated')} approximated, {result.count('dropped')} dropped"
    )
    for note in result.notes():
        err(f"  {note.text()}")


def run_import(args: argparse.Namespace) -> int:
    from controller.importers.check import check_documents
    from controller.importers.emit import render, render_document

    runner: Callable[[argparse.Namespace], ImportResult] = args.importer
    result = runner(args)
    check_documents(result)
    refusals = _refusals(result)
    if args.output_dir:
        _check_output_dir(Path(args.output_dir))
    if args.output_dir:
        for path in _write(result, Path(args.output_dir)):
            err(f"wrote {path}")
    else:
        sys.stdout.write(
            "---\n".join(render_document(d) for d in result.documents)
            if not result.loose
            else render(result.documents, result.loose)
        )
        for name in result.secrets:
            err(
                f"not printed: the key that would go to {name} (mode 0600): give -o DIR to "
                "keep it there; a secret never goes into the YAML"
            )
    _summary(result, args.source)
    if refusals:
        err("ha apply refuses these objects alone until:")
        for line in refusals:
            err(f"  {line}")
    if args.strict and (result.count("approximated") or result.count("dropped")):
        err("--strict: some elements were approximated or dropped (see above)")
        return EXIT_INVALID
    return 0


def _address_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address",
        action="append",
        default=[],
        metavar="NODE=IP[,IP2]",
        help="a node's cluster address (the legacy files have none), then its addresses on "
        "other heartbeat networks; repeat per node",
    )


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    # No connection options: an import reads files only (`ha --cluster NAME import` still
    # names the Cluster).
    p = sub.add_parser(
        "import",
        help="translate a legacy cluster configuration to Vigil YAML",
        description="Translate Heartbeat, DRBD, Pacemaker or rgmanager configuration to Vigil "
        "YAML, with a comment beside every element not translated exactly and a summary on "
        "stderr. Reads only the files given; needs no store.",
    )
    formats = p.add_subparsers(dest="source", metavar="FORMAT", required=True)
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "-o", "--output-dir", metavar="DIR", help="write one file per object (and keys) in DIR"
    )
    shared.add_argument(
        "--strict", action="store_true", help="exit 1 if anything was approximated or dropped"
    )
    shared.add_argument(
        "--cluster-name",
        metavar="NAME",
        help="the Cluster's name (default: --cluster before the command, $VIGIL_CLUSTER, "
        f"cluster.conf's name, or {_DEFAULT_CLUSTER})",
    )
    hb = formats.add_parser(
        "heartbeat",
        parents=[shared],
        help="ha.cf, haresources, authkeys (or /etc/ha.d), and drbd.conf",
    )
    hb.add_argument("paths", nargs="+", metavar="DIR|FILE")
    _address_option(hb)
    hb.set_defaults(local=run_import, importer=_run_heartbeat)
    pcmk = formats.add_parser(
        "pacemaker",
        parents=[shared],
        help="cib.xml or crm syntax (crm configure show), with ha.cf, authkeys, drbd.conf",
    )
    pcmk.add_argument("paths", nargs="+", metavar="CIB.xml|FILE.crm")
    _address_option(pcmk)
    pcmk.set_defaults(local=run_import, importer=_run_pacemaker)
    rgm = formats.add_parser(
        "rgmanager", parents=[shared], help="cluster.conf (RHEL 5/6 High Availability Add-On)"
    )
    rgm.add_argument("paths", nargs=1, metavar="cluster.conf")
    _address_option(rgm)
    rgm.add_argument(
        "--prefix",
        action="append",
        default=[],
        metavar="ADDRESS/LEN",
        help="the prefix length of a floating <ip> that cluster.conf gives without one",
    )
    rgm.set_defaults(local=run_import, importer=_run_rgmanager)
    drbd = formats.add_parser("drbd", parents=[shared], help="drbd.conf (includes followed)")
    drbd.add_argument("paths", nargs=1, metavar="drbd.conf")
    drbd.set_defaults(local=run_import, importer=_run_drbd)

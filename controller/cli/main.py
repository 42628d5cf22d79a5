"""``ha``: the operator's command line, kubectl-like.

Each command reads its options, opens the store named by the client config and
does one thing. Errors become one clear message on stderr and an exit status
(see controller.api.errors); no traceback reaches the user.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import PackageNotFoundError, entry_points
from importlib.metadata import version as package_version
from typing import Any

from controller.api.errors import EXIT_CONFLICT, EXIT_INVALID, EXIT_UNAVAILABLE, VigilError
from controller.api.meta import API_VERSION
from controller.cli import (
    apply_cmd,
    cluster_cmd,
    events_cmd,
    fence_cmd,
    get_cmd,
    import_cmd,
    ops_cmd,
)
from controller.cli.output import FORMATS, err
from controller.store.client_config import ClientConfig, resolve
from controller.store.errors import (
    ConflictError,
    StoreError,
    StoreUnavailableError,
    TxnTooLargeError,
)

Command = Callable[[argparse.Namespace, ClientConfig], Coroutine[Any, Any, int]]


def _version() -> str:
    try:
        return package_version("vigil")
    except PackageNotFoundError:
        return "unknown"


def _global_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection")
    # SUPPRESS: an option given before the command is not reset by the subparser.
    group.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="client config file (default: $VIGIL_CONFIG, "
        "~/.config/vigil/config.yaml, /etc/vigil/client.yaml)",
    )
    group.add_argument(
        "--endpoints",
        default=argparse.SUPPRESS,
        help="etcd endpoints, comma-separated (default: $VIGIL_ENDPOINTS)",
    )
    group.add_argument(
        "--cluster",
        default=argparse.SUPPRESS,
        help="cluster name: the store prefix /vigil/NAME/ (default: $VIGIL_CLUSTER)",
    )
    group.add_argument(
        "--timeout",
        default=argparse.SUPPRESS,
        help="store request timeout, e.g. 5s (default: $VIGIL_TIMEOUT or 5s)",
    )
    return common


def _file_option(parser: argparse.ArgumentParser, required: bool) -> None:
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=required,
        metavar="FILE",
        default=[] if not required else None,
        help="file, directory of .yaml/.yml/.json files, or - for stdin; repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    parser = argparse.ArgumentParser(
        prog="ha",
        description="Vigil: declarative high availability for bare-metal servers.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "apply",
        parents=[common],
        help="create or update objects from files",
        description="Create or update objects; all or nothing.",
    )
    _file_option(p, True)
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="validate against the store and print what would change; change nothing",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=("text", "diff"),
        default="text",
        help="text (one line per object) or diff",
    )
    p.set_defaults(run=apply_cmd.run_apply)

    p = sub.add_parser(
        "diff",
        parents=[common],
        help="show what apply would change",
        description="Print a unified diff between the store and the files. Exit status, as "
        "kubectl diff: 0 nothing would change, 1 something would, 2 the files cannot be "
        "compared (invalid input), 3 store unreachable.",
    )
    _file_option(p, True)
    p.set_defaults(run=apply_cmd.run_diff)

    p = sub.add_parser(
        "get",
        parents=[common],
        help="list objects",
        description="List objects: KIND is cluster, node, fencedevice (fd), "
        "replicatedvolume (rv), resourcegroup (rg), or all.",
    )
    p.add_argument("kind", metavar="KIND")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-o", "--output", choices=FORMATS, default="table")
    p.add_argument("-l", "--selector", help="label selector, e.g. app=pg,tier!=web")
    p.add_argument("-w", "--watch", action="store_true", help="keep printing changes")
    p.set_defaults(run=get_cmd.run_get)

    p = sub.add_parser(
        "describe",
        parents=[common],
        help="show an object in detail",
        description="Spec, status, conditions and recent events of objects.",
    )
    p.add_argument("kind", metavar="KIND")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-l", "--selector", help="label selector")
    p.set_defaults(run=get_cmd.run_describe)

    p = sub.add_parser(
        "delete",
        parents=[common],
        help="delete objects",
        description="Delete objects by name, selector or file; all or nothing.",
    )
    p.add_argument("kind", nargs="?", metavar="KIND")
    p.add_argument("names", nargs="*", metavar="NAME")
    _file_option(p, False)
    p.add_argument("-l", "--selector", help="delete the objects of KIND matching a selector")
    p.add_argument("--all", action="store_true", help="delete every object of KIND")
    p.add_argument("--dry-run", action="store_true", help="print what would be deleted")
    p.add_argument(
        "--ignore-not-found",
        action="store_true",
        help="skip objects that do not exist instead of failing",
    )
    p.set_defaults(run=apply_cmd.run_delete)

    events_cmd.register(sub, common)

    p = sub.add_parser(
        "explain",
        help="document a kind or a field",
        description="Describe KIND or KIND.field.path, e.g. rg.spec.placement.",
    )
    p.add_argument("path", metavar="KIND[.FIELD...]")
    p.add_argument("--recursive", action="store_true", help="print the whole field tree")
    p.set_defaults(run=None, local=_explain)

    p = sub.add_parser("version", parents=[common], help="print the version")
    p.set_defaults(run=None, local=_print_version)

    ops_cmd.register(sub, common)
    fence_cmd.register(sub, common)
    cluster_cmd.register(sub, common)
    import_cmd.register(sub, common)
    _register_plugins(sub)
    return parser


PLUGINS = "vigil.ha_commands"


def _register_plugins(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Command groups of other packages (`ha lab`), found through the entry point group
    vigil.ha_commands, so that `ha` depends on none of them: each entry is a callable
    register(subparsers)."""
    for entry in sorted(entry_points(group=PLUGINS), key=lambda e: e.name):
        try:
            register = entry.load()
        except ImportError as exc:  # a plugin whose package is broken must not break `ha`
            err(f"warning: ha {entry.name}: not available ({exc})")
            continue
        register(sub)


def _explain(args: argparse.Namespace) -> int:
    from controller.cli.explain import explain

    try:
        sys.stdout.write(explain(args.path, recursive=args.recursive))
    except ValueError as exc:
        raise VigilError(str(exc)) from None
    return 0


def _print_version(args: argparse.Namespace) -> int:
    print(f"ha {_version()} (API {API_VERSION})")
    return 0


def _report(exc: BaseException) -> int:
    if isinstance(exc, VigilError):
        err(f"error: {exc.message}")
        for line in exc.details:
            err(f"  {line}")
        return exc.exit_code
    if isinstance(exc, StoreUnavailableError):
        err(f"error: {exc}")
        return EXIT_UNAVAILABLE
    if isinstance(exc, ConflictError):
        err(f"error: {exc}")
        return EXIT_CONFLICT
    if isinstance(exc, TxnTooLargeError | StoreError):
        err(f"error: {exc}")
        return EXIT_INVALID
    raise exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        # Commands that need no store: explain, version, and the lab's (which run a
        # handler of their own from `func`).
        local = getattr(args, "local", None) or getattr(args, "func", None)
        if getattr(args, "run", None) is None and local is not None:
            code: int = local(args)
            return code
        config = resolve(
            config_path=getattr(args, "config", None),
            endpoints=getattr(args, "endpoints", None),
            cluster=getattr(args, "cluster", None),
            timeout=getattr(args, "timeout", None),
        )
        config = dataclasses.replace(config, on_wait=lambda message: err(f"waiting: {message}"))
        command: Command = args.run
        return asyncio.run(command(args, config))
    except (VigilError, StoreError) as exc:
        return _report(exc)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `ha get ... | head`: the reader left; that is not an error.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())

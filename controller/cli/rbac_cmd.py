"""``ha cluster user add|list|delete`` and ``ha cluster rbac enable|disable``.

Registered under ``ha cluster`` by cluster_cmd.register. The flows are in
controller/bootstrap/rbac.py; etcd enforces the roles (docs/decisions.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from controller.api.errors import InputError, VigilError
from controller.bootstrap import pki, rbac
from controller.bootstrap.node_config import DEFAULT_NODE_CONFIG, load_node_config
from controller.bootstrap.users import UserError
from controller.cli.output import table
from controller.store import access
from controller.store.client_config import ClientConfig

Remote = Callable[[argparse.Namespace, ClientConfig], Coroutine[Any, Any, int]]


def _pki_paths(args: argparse.Namespace) -> pki.PKIPaths:
    if args.pki_dir:
        return pki.PKIPaths(Path(args.pki_dir))
    path = Path(args.node_config or os.environ.get("VIGIL_NODE_CONFIG") or DEFAULT_NODE_CONFIG)
    return load_node_config(path).pki


async def _user_add(args: argparse.Namespace, config: ClientConfig) -> int:
    if config.tls.ca is None:
        raise InputError(
            f"client config ({config.source}) names no CA certificate (tls.ca): users are "
            "client certificates of the cluster CA; use the config `ha cluster init` wrote"
        )
    out = Path(args.output_dir) if args.output_dir else None
    added = await rbac.add_user(config, lambda: _pki_paths(args), args.name, args.role, out)
    state = "added" if added.new else "updated"
    print(
        f"user {added.name} {state}: role {added.role} (etcd role {access.ETCD_ROLE[added.role]})"
    )
    if added.files is not None:
        print(f"  certificate:   {added.files.cert}")
        print(f"  key:           {added.files.key} (0600; made here, copy it only to its user)")
        print(f"  client config: {added.files.config}  (ha --config {added.files.config} ...)")
    return 0


async def _user_list(args: argparse.Namespace, config: ClientConfig) -> int:
    rows = await rbac.list_users(config)
    if args.output == "json":
        doc = [{"name": r.name, "role": r.role, "etcdRoles": list(r.etcd_roles)} for r in rows]
        print(json.dumps(doc, indent=2))
    else:
        body = [[r.name, r.role, ",".join(r.etcd_roles)] for r in rows]
        sys.stdout.write(table(body, ["USER", "ROLE", "ETCD ROLES"]))
    return 0


async def _user_delete(args: argparse.Namespace, config: ClientConfig) -> int:
    if not await rbac.delete_user(config, args.name):
        raise InputError(f"no user {args.name!r}; list them with `ha cluster user list`")
    print(
        f"user {args.name} deleted: etcd refuses its certificate's requests from now on (the "
        "certificate itself stays valid until it expires: Vigil keeps no revocation list)"
    )
    return 0


async def _rbac_enable(args: argparse.Namespace, config: ClientConfig) -> int:
    roots = await rbac.enable(config)
    print("control-plane RBAC enabled: etcd checks every request's user (certificate CN)")
    print(f"  admin (etcd root): {', '.join(roots)}")
    print("  add users with `ha cluster user add NAME --role viewer|operator|admin`")
    return 0


async def _rbac_disable(args: argparse.Namespace, config: ClientConfig) -> int:
    await rbac.disable(config)
    print("control-plane RBAC disabled: every certificate of the cluster CA may do anything")
    print("  (users and roles are kept; `ha cluster rbac enable` restores them)")
    return 0


def _checked(fn: Remote) -> Remote:
    async def wrapped(args: argparse.Namespace, config: ClientConfig) -> int:
        try:
            return await fn(args, config)
        except (UserError, pki.PKIError) as e:
            raise VigilError(str(e)) from None

    return wrapped


def register(
    csub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    user = csub.add_parser(
        "user",
        help="control-plane users: a client certificate and an etcd user with a role",
        description="Users of `ha`: each is a client certificate (CN = name) of the cluster "
        "CA and an etcd user of that name with one role: viewer, operator or admin. "
        "Enforced once `ha cluster rbac enable` ran.",
    )
    usub = user.add_subparsers(dest="user_command", metavar="COMMAND", required=True)
    p = usub.add_parser(
        "add",
        parents=[common],
        help="create a user (certificate, key, client config) or change its role",
        description="On a node holding the CA key: issue a client certificate with CN=NAME "
        "(its key made here, 0600), write a client config for it, create the etcd user and "
        "grant the role. For an existing user, only the role changes unless -o is given.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--role", required=True, choices=access.ROLES)
    p.add_argument(
        "-o", "--output-dir", metavar="DIR",
        help="where the certificate, key and client config go (default ./vigil-user-NAME)",
    )  # fmt: skip
    p.add_argument("--node-config", metavar="FILE", help="this node's config (for the CA)")
    p.add_argument("--pki-dir", metavar="DIR", help="the CA's directory (default: node config's)")
    p.set_defaults(run=_checked(_user_add))
    p = usub.add_parser("list", parents=[common], help="list users and their roles")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.set_defaults(run=_checked(_user_list))
    p = usub.add_parser(
        "delete",
        parents=[common],
        help="delete a user (its certificate then maps to no one)",
        description="Delete the etcd user: once RBAC is enabled, its certificate is refused. "
        "The certificate itself cannot be revoked (no CRL) and stays valid until it expires.",
    )
    p.add_argument("name", metavar="NAME")
    p.set_defaults(run=_checked(_user_delete))

    rb = csub.add_parser(
        "rbac",
        help="turn control-plane RBAC (etcd auth) on or off",
        description="enable: create the roles, give every node's agent and the nodes' `ha` "
        "certificate the admin (etcd root) role, then turn etcd's auth on. disable: off.",
    )
    rsub = rb.add_subparsers(dest="rbac_command", metavar="COMMAND", required=True)
    p = rsub.add_parser("enable", parents=[common], help="turn etcd auth on (admin only)")
    p.set_defaults(run=_checked(_rbac_enable))
    p = rsub.add_parser("disable", parents=[common], help="turn etcd auth off (admin only)")
    p.set_defaults(run=_checked(_rbac_disable))

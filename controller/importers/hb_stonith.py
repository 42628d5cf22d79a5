"""Heartbeat 1's `stonith_host` lines for IPMI plugins to FenceDevices; the password goes to
a root-only credentials file, never into the YAML."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from controller.importers.names import to_name, unique
from controller.importers.result import ImportResult, Note, new_document
from controller.importers.sources import Line

SECRETS_DIR = "/etc/vigil/secrets"
# Positional parameters of each plugin, in the order `stonith -t TYPE -h` gives them.
_PLUGINS = {
    "external/ipmi": ("hostname", "ipaddr", "userid", "passwd", "interface"),
    "ipmilan": ("hostname", "ipaddr", "port", "auth", "priv", "login", "password"),
}


def import_stonith_hosts(
    lines: list[Line], nodes: Mapping[str, str], out: ImportResult
) -> set[str]:
    """FenceDevices for the lines it can read; the Vigil names of the nodes they fence."""
    covered: set[str] = set()
    taken = {d.name for d in out.documents if d.kind == "FenceDevice"}
    for line in lines:
        words = line.text.split()
        if len(words) < 3 or words[2] not in _PLUGINS:
            out.note(
                Note(
                    "dropped",
                    line.where,
                    line.text,
                    "only the external/ipmi and ipmilan plugins translate: write a "
                    "FenceDevice for this device (ha explain fd)",
                )
            )
            continue
        names = _PLUGINS[words[2]]
        values = dict(zip(names, words[3:], strict=False))
        missing = [n for n in ("hostname", "ipaddr") if n not in values]
        if missing:
            raise line.where.fail(f"{words[2]} needs {' and '.join(missing)} after the type")
        host = values["hostname"]
        if host not in nodes:
            raise line.where.fail(f"stonith_host fences {host!r}, which is not a `node` of ha.cf")
        try:
            ipaddress.ip_address(values["ipaddr"])
        except ValueError:
            raise line.where.fail(f"{values['ipaddr']!r} is not an IP address") from None
        target = nodes[host]
        name = unique(to_name(f"ipmi-{target}") or "ipmi", taken)
        spec: dict[str, object] = {
            "agent": "ipmi",
            "targets": [target],
            "address": values["ipaddr"],
        }
        user = values.get("userid") or values.get("login")
        if user:
            spec["username"] = user
        password = values.get("passwd") or values.get("password")
        doc = new_document("FenceDevice", name, spec, line.where)
        if password:
            spec["credentialsFile"] = f"{SECRETS_DIR}/{name}"
            out.secrets[f"fence-{name}.credentials"] = f"password={password}\n".encode()
            doc.comment(
                ("spec",),
                Note(
                    "approximated",
                    line.where,
                    f"stonith_host {host} password",
                    f"kept in fence-{name}.credentials (mode 0600), never in the YAML: copy "
                    f"it to {SECRETS_DIR}/{name} on every node",
                ),
            )
        if words[1] != "*":
            doc.comment(
                ("spec",),
                Note(
                    "approximated",
                    line.where,
                    f"stonith_host {words[1]}",
                    "any node may fence through a Vigil FenceDevice, not only the one named",
                ),
            )
        out.documents.append(doc)
        out.ok()
        covered.add(target)
    return covered

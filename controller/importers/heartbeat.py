"""`ha import heartbeat`: ha.cf, haresources and authkeys (and drbd.conf beside them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from controller.importers.authkeys import import_authkeys
from controller.importers.drbd import import_drbd
from controller.importers.hacf import import_hacf
from controller.importers.haresources import import_haresources
from controller.importers.result import ImportFailed, ImportResult, Note, Where
from controller.importers.sources import read_text

_KNOWN = ("ha.cf", "haresources", "authkeys")


def _files(paths: Sequence[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        if path.is_dir():
            for name in _KNOWN:
                if (path / name).is_file():
                    found[name] = path / name
            continue
        name = path.name
        if name.endswith((".conf", ".res")) and name != "ha.cf":
            found.setdefault("drbd", path)
            continue
        if name not in _KNOWN:
            raise ImportFailed(
                f"{path}: not a Heartbeat file: give ha.cf, haresources, authkeys (or "
                "their directory, /etc/ha.d) and optionally drbd.conf"
            )
        found[name] = path
    if "ha.cf" not in found:
        raise ImportFailed(
            f"no ha.cf among {', '.join(map(str, paths))}: it names the nodes; give "
            "/etc/ha.d or the file"
        )
    return found


def import_heartbeat(
    paths: Sequence[Path], cluster_name: str, addresses: Mapping[str, list[str]]
) -> ImportResult:
    files = _files(paths)
    out = ImportResult()
    hacf = import_hacf(read_text(files["ha.cf"]), str(files["ha.cf"]), cluster_name, addresses, out)
    volumes: dict[str, str] = {}
    if "drbd" in files:
        drbd = import_drbd(files["drbd"], hacf.nodes)
        volumes = drbd.devices
        out.merge(drbd.result)
    if "haresources" in files:
        if hacf.crm:
            out.note(
                Note(
                    "dropped",
                    Where(str(files["haresources"])),
                    "haresources",
                    "ha.cf turns the CRM on, so Heartbeat ignored this file",
                )
            )
        else:
            text = read_text(files["haresources"])
            import_haresources(text, str(files["haresources"]), hacf, volumes, out)
    if "authkeys" in files:
        import_authkeys(read_text(files["authkeys"]), str(files["authkeys"]), out)
    return out

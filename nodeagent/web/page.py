"""The status page in HTML: what `ha status` prints, and the last events. Pure.

The rows are `ha status`'s own (controller/status/rows.py), so the page cannot say
something the command does not. Every string that reaches the page passes through
`html.escape`: node, group and volume names, reasons and event messages come from specs
and from whoever wrote the store, and a page that renders them as markup would let anyone
who may apply a spec run script in an administrator's browser. No script is needed
either: the page reloads itself (meta refresh), as crm_mon's HTML output does.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.status.rows import FENCE_HEADER, GROUP_HEADER, StatusRows
from controller.status.volume_rows import VOLUME_HEADER

REFRESH_SECONDS = 5
EVENTS_SHOWN = 20
NODE_HEADER = ["NAME", "ROLE", "STATE", "AGENT", "SERVING", "STANDBY", "HEARS", "LEADER"]
EVENT_HEADER = ["TIME", "TYPE", "OBJECT", "REASON", "SOURCE", "MESSAGE"]

# Cells worth a colour, by their exact text; anything else stays plain.
_GOOD = {"Ready", "Running", "connected", "in sync", "fenced"}
_BAD = {"Lost", "Fenced", "Failed", "Blocked", "StopFailed", "no agent", "SPLIT BRAIN",
        "Warning", "failed", "refused", "NotReady"}  # fmt: skip

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.1em; margin-top: 1.5em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 0.2em 0.8em 0.2em 0; vertical-align: top; }
th { font-size: 0.85em; color: #555; }
.good { color: #17702a; }
.bad { color: #b00020; font-weight: bold; }
.meta { color: #555; font-size: 0.9em; }
.warn { background: #fff3cd; padding: 0.5em; }
pre { margin: 0.2em 0; }
"""


@dataclass(frozen=True)
class Page:
    """What one page shows: `ha status`'s rows and document, as one agent's copy of the
    store has them, and the store's last events (None with the reason when it did not
    answer)."""

    node: str  # the agent answering
    rows: StatusRows
    document: Mapping[str, Any]  # status_document(): what /status.json serves
    now: float
    events: Sequence[Mapping[str, Any]] | None = field(default_factory=list)
    events_error: str = ""
    store_connected: bool = True


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: str, tag: str = "td") -> str:
    if value in _GOOD:
        return f'<{tag} class="good">{_e(value)}</{tag}>'
    if value in _BAD:
        return f'<{tag} class="bad">{_e(value)}</{tag}>'
    return f"<{tag}>{_e(value)}</{tag}>"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return "<p>none</p>\n"
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>\n" for row in rows)
    return f"<table>\n<tr>{head}</tr>\n{body}</table>\n"


def _section(title: str, body: str) -> str:
    return f"<h2>{_e(title)}</h2>\n{body}"


def _node_rows(page: Page) -> list[list[str]]:
    """`ha status`'s node rows with SERVING from the document (the serving lease the
    node's agent last recorded) and LEADER spelled out."""
    serving = {n["name"]: n["serving"] for n in page.document.get("nodes", [])}
    out = []
    for name, role, state, agent, standby, hears, leader in page.rows.nodes or []:
        is_serving = "yes" if serving.get(name) else "no"
        out.append([name, role, state, agent, is_serving, standby, hears, leader or ""])
    return out


def _lines(lines: Sequence[str]) -> str:
    if not lines:
        return "<p>none</p>\n"
    return "".join(f"<pre>{_e(line)}</pre>\n" for line in lines)


def _event_rows(events: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """The newest EVENTS_SHOWN events, newest first, as `ha events` words them."""
    newest = sorted(events, key=lambda e: str(e.get("time", "")), reverse=True)
    rows = []
    for event in newest[:EVENTS_SHOWN]:
        involved = event.get("involvedObject", {})
        source = event.get("source", {})
        who = source.get("component", "")
        if source.get("node"):
            who += f"/{source['node']}"
        rows.append(
            [
                str(event.get("time", "")),
                str(event.get("type", "")),
                f"{involved.get('kind', '')}/{involved.get('name', '')}",
                str(event.get("reason", "")),
                who,
                str(event.get("message", "")),
            ]
        )
    return rows


def _events(page: Page) -> str:
    if page.events is None:
        return f'<p class="warn">events unavailable: {_e(page.events_error)}</p>\n'
    return _table(EVENT_HEADER, _event_rows(page.events))


def render_page(page: Page) -> str:
    rows = page.rows
    when = datetime.fromtimestamp(page.now, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">\n',
        f"<title>{_e(rows.headline)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n",
        f"<h1>{_e(rows.headline)}</h1>\n",
        f'<p class="meta">as agent {_e(page.node)} sees the store at {_e(when)}; '
        f'reloads every {REFRESH_SECONDS} s; <a href="/status.json">JSON</a>, '
        '<a href="/metrics">metrics</a></p>\n',
    ]
    if not page.store_connected:
        parts.append(
            '<p class="warn">This agent cannot reach the store: what follows is its last '
            "copy, which may be out of date. Another node's page may be current.</p>\n"
        )
    if rows.nodes is None:
        # No Cluster object: the headline says so, and there is nothing else to show.
        parts.append(_section("Events", _events(page)))
        parts.append("</body>\n</html>\n")
        return "".join(parts)
    parts.append(f"<p>Protection: {_e(rows.protection)}</p>\n")
    parts.append(_section("Nodes", _table(NODE_HEADER, _node_rows(page))))
    parts.append(_section("Heartbeat links down", _lines(rows.links or [])))
    parts.append(_section("Fencing", _table(FENCE_HEADER, rows.fencing or [])))
    volumes = _table(VOLUME_HEADER, rows.volumes or [])
    if rows.volume_notes:
        volumes += _lines(rows.volume_notes)
    parts.append(_section("Volumes", volumes))
    parts.append(_section("Groups", _table(GROUP_HEADER, rows.groups or [])))
    parts.append(_section(f"Events (last {EVENTS_SHOWN})", _events(page)))
    parts.append("</body>\n</html>\n")
    return "".join(parts)

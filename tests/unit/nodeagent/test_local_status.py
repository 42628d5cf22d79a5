"""The agent's own view for `ha status` where the store does not answer: written by the
agent (nodeagent/local_status.py), shown by `ha` (controller/cli/local_view.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.api.liveness import Liveness
from controller.api.local_status import LocalStatus
from controller.cli.local_view import read_local_status, render_local
from controller.store.informer import Informer
from controller.store.memory import MemoryStore
from nodeagent.local_status import LocalStatusFile, snapshot, sources, write_local_status
from nodeagent.observation import State
from nodeagent.reconciler.plan import GroupView, ResourceView
from tests.unit.static_liveness import StaticLiveness

LOST = Liveness("dead", True)
WEB = GroupView(
    "web",
    "stop",
    (ResourceView("vip", State.STOPPED), ResourceView("http", State.STOPPED, "exited")),
)


def isolated_n1() -> StaticLiveness:
    return StaticLiveness({"n1": Liveness("up", False), "n2": LOST, "n3": LOST}, serving=False)


async def test_a_minority_node_writes_and_shows_that_it_stands_down(tmp_path: Path) -> None:
    informer = Informer(MemoryStore("lab"))  # never loaded: no leader seen
    status = snapshot("n1", "lab", isolated_n1(), informer, [WEB])
    path = tmp_path / "status.json"
    write_local_status(path, status)
    read = read_local_status(path)
    assert read is not None and read.written >= status.written  # or the file's time, later
    assert read == status.model_copy(update={"written": read.written})
    text = render_local(read, read.written + timedelta(seconds=0.4))
    assert text.startswith("LOCAL VIEW of node n1, written by its agent 0.4s ago.")
    assert "this node's own view, not the cluster's, and may be stale" in text
    assert "Quorum:  NO: n1 hears 0 of 2 peers, not a majority of 3" in text
    assert "it runs nothing and stops what it ran" in text
    assert "Leader:  none (the controller, as last seen in the store)" in text
    assert "Peers:   n2 dead (declared lost), n3 dead (declared lost)" in text
    assert "  web  not here      vip stopped, http stopped" in text
    assert "STALE" not in text


async def test_an_old_file_is_called_stale_and_a_bad_one_is_no_view(tmp_path: Path) -> None:
    status = snapshot("n1", "lab", isolated_n1(), Informer(MemoryStore("lab")), [])
    text = render_local(status, status.written + timedelta(seconds=42))
    assert "STALE: the agent has not written for 42s; is vigil-agent running on n1?" in text
    assert "  (none)" in text
    (tmp_path / "half.json").write_text('{"node": "n1", "clus')
    assert read_local_status(tmp_path / "half.json") is None
    assert read_local_status(tmp_path / "absent.json") is None


async def test_a_serving_node_says_placements_wait_for_the_store() -> None:
    view = StaticLiveness({"n1": Liveness("up", False), "n2": Liveness("up", False)})
    status = snapshot("n1", "lab", view, Informer(MemoryStore("lab")), [])
    text = render_local(status, datetime.now(UTC))
    assert "Quorum:  yes: n1 hears 1 of 1 peers and holds its serving lease" in text
    assert "without the store, placements cannot change" in text


async def test_an_unchanged_view_is_not_written_again_but_stays_fresh(tmp_path: Path) -> None:
    # A thousand groups are not serialised every second: the file is written when what it
    # says changes, and otherwise only its modification time is renewed, which `ha status`
    # counts as the agent vouching for it (STALE only once the agent stops).
    path = tmp_path / "status.json"
    file = LocalStatusFile(path)
    liveness, informer = isolated_n1(), Informer(MemoryStore("lab"))
    source = sources("n1", "lab", liveness, informer, [WEB])
    file.keep(source)
    # As if written a minute ago, and vouched for since by nobody:
    old = read_local_status(path)
    assert old is not None
    old = old.model_copy(update={"written": old.written - timedelta(seconds=60)})
    write_local_status(path, old)
    minute_ago = old.written.timestamp()
    os.utime(path, (minute_ago, minute_ago))
    stale = read_local_status(path)
    assert stale is not None and stale.written == old.written
    assert "STALE: the agent has not written for 60s" in render_local(stale, old.written + MINUTE)

    file.keep(sources("n1", "lab", liveness, informer, [WEB]))  # the same view again
    assert read_text_unchanged(path, old)
    fresh = read_local_status(path)
    assert fresh is not None and fresh.written >= old.written + timedelta(seconds=59)
    assert "STALE" not in render_local(fresh, fresh.written)

    moved = GroupView("web", "run", (ResourceView("vip", State.RUNNING),))
    file.keep(sources("n1", "lab", liveness, informer, [moved]))
    rewritten = read_local_status(path)
    assert rewritten is not None and rewritten.groups[0].mode == "run"
    assert rewritten == snapshot("n1", "lab", liveness, informer, [moved]).model_copy(
        update={"written": rewritten.written}
    )


MINUTE = timedelta(seconds=60)


def read_text_unchanged(path: Path, status: LocalStatus) -> bool:
    return path.read_text() == status.model_dump_json(indent=1)

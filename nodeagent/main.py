"""``vigil-agent``: the daemon on every node.

    vigil-agent [--config /etc/vigil/node.yaml] [--run-dir /run/vigil] [--lib-dir /var/lib/vigil]

Heartbeats start before anything heavy is imported (nodeagent/fastpath.py): a restarted
agent must be heard again within deadtime. They run in a process of their own, forked
first thing (nodeagent/liveness_process.py), which no control-plane work can delay: not
its event loop, not its interpreter lock, not its garbage collections.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import importlib
import logging
import os
import sys
from pathlib import Path

from nodeagent import fastpath
from nodeagent.liveness_link import LivenessLink
from nodeagent.loopwatch import GcWatch, LoopWatch
from nodeagent.realtime import raise_priority

log = logging.getLogger("vigil-agent")


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vigil-agent", description=__doc__.splitlines()[0])
    p.add_argument(
        "--config",
        default=os.environ.get("VIGIL_NODE_CONFIG", "/etc/vigil/node.yaml"),
        help="node config written by `ha cluster init/join`",
    )
    p.add_argument("--run-dir", default="/run/vigil", help="PID files, the serving lease")
    p.add_argument("--lib-dir", default="/var/lib/vigil", help="caches kept across restarts")
    p.add_argument("--log-level", default=os.environ.get("VIGIL_LOG_LEVEL", "info"))
    return p.parse_args(argv)


def _keepalive(cached: dict[str, object] | None) -> float:
    # 0.2 s is the shipped keepalive: the loops' stall threshold until the spec is read.
    timing = cached.get("timing") if cached is not None else None
    return float(timing.get("keepalive", 0.2)) if isinstance(timing, dict) else 0.2


async def _run(args: argparse.Namespace, liveness: LivenessLink, keepalive: float) -> int:
    lib_dir = Path(args.lib_dir)
    liveness.connect()
    # The control plane's latency, against the same threshold as the liveness loop's; it
    # also tells the liveness process's watchdog that the control loop runs.
    watch = LoopWatch(keepalive, "control-plane event loop", on_tick=liveness.beat)
    watch.start()
    # Long collections delay decisions (no longer heartbeats): logged with their cause.
    GcWatch(keepalive / 2).install()
    # Loading the rest takes most of a second of CPU: in a thread, so that this loop keeps
    # sending heartbeats and extending the lease meanwhile (inline, a restarted agent went
    # silent for longer than deadtime on a busy machine).
    await asyncio.to_thread(_import_agent)
    from controller.api.errors import VigilError
    from controller.bootstrap.node_config import load_node_config
    from nodeagent.agent import Agent
    from nodeagent.metrics.endpoint import web_config

    try:
        config = load_node_config(Path(args.config))
        metrics_web = web_config(config.metrics)
    except VigilError as exc:
        log.error("%s", exc)
        return 1
    if config.state == "left":
        log.error(
            "%s: this node left the cluster; join it again with `ha cluster join`", args.config
        )
        return 1
    agent = Agent(
        config,
        Path(args.config),
        run_dir=Path(args.run_dir),
        lib_dir=lib_dir,
        liveness=liveness,
        metrics_web=metrics_web,
    )
    # What start-up loaded stays for the agent's life: out of every full collection.
    gc.freeze()
    try:
        return await agent.run()
    except VigilError as exc:  # a setting that cannot act (metrics.listen in use)
        log.error("%s", exc)
        return 1


def _import_agent() -> None:
    for module in ("controller.bootstrap.node_config", "controller.api.errors", "nodeagent.agent"):
        importlib.import_module(module)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    cached = fastpath.load(Path(args.lib_dir))
    keepalive = _keepalive(cached)
    # First, before any thread or heavy import: the liveness process is a fork of this one.
    liveness = LivenessLink.spawn(cached, Path(args.run_dir) / "lease.json", keepalive=keepalive)
    # The liveness process's watchdog aborts a stuck agent: show where it was stuck.
    faulthandler.enable()
    log.info("%s", raise_priority())
    try:
        return asyncio.run(_run(args, liveness, keepalive))
    except KeyboardInterrupt:
        return 130
    finally:
        liveness.close()


if __name__ == "__main__":
    sys.exit(main())

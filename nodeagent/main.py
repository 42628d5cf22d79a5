"""``vigil-agent``: the daemon on every node.

    vigil-agent [--config /etc/vigil/node.yaml] [--run-dir /run/vigil] [--lib-dir /var/lib/vigil]

Heartbeats start before anything heavy is imported (nodeagent/fastpath.py): a restarted
agent must be heard again within deadtime. They run on a thread and loop of their own
(nodeagent/liveness_thread.py), which no control-plane work can delay.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import os
import sys
from pathlib import Path

from nodeagent import fastpath
from nodeagent.liveness_thread import LivenessThread
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


async def _run(args: argparse.Namespace) -> int:
    lib_dir = Path(args.lib_dir)
    cached = fastpath.load(lib_dir)
    # 0.2 s is the shipped keepalive: the liveness loop's stall threshold until the
    # Cluster spec is read.
    keepalive = cached.timing.keepalive if cached is not None else 0.2
    liveness = LivenessThread(keepalive)
    liveness.start()
    log.info("liveness thread: %s", liveness.scheduling)
    heartbeat = None
    recorder = None
    if cached is not None:
        heartbeat = await liveness.run(fastpath.start(cached))
        # Keep extending the serving lease on disk from now on: the enforcer watches it.
        recorder = fastpath.LeaseRecorder(heartbeat, Path(args.run_dir) / "lease.json")
        await liveness.call(recorder.start)
    # The control plane's latency, against the same threshold as the liveness loop's; it
    # also tells the liveness thread's watchdog that the control loop runs.
    watch = LoopWatch(keepalive, "control-plane event loop", on_tick=liveness.beat)
    watch.start()
    # A full collection holds every thread, the liveness thread too: 0.1-0.4 s with a
    # thousand groups converging (measured; pyroute2's replies are cyclic garbage).
    GcWatch(keepalive / 2).install()
    # Loading the rest takes most of a second of CPU: in a thread, so that this loop keeps
    # sending heartbeats and extending the lease meanwhile (inline, a restarted agent went
    # silent for longer than deadtime on a busy machine).
    await asyncio.to_thread(_import_agent)
    from controller.api.errors import VigilError
    from controller.bootstrap.node_config import load_node_config
    from nodeagent.agent import Agent

    try:
        config = load_node_config(Path(args.config))
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
        liveness_thread=liveness,
        heartbeat=heartbeat,
        recorder=recorder,
    )
    # What start-up loaded stays for the agent's life: out of every full collection.
    gc.freeze()
    try:
        return await agent.run()
    finally:
        liveness.stop()


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
    log.info("%s", raise_priority())
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The node agent: one asyncio process per node that wires the parts together.

Start-up order matters for safety and speed:
1. heartbeats from the cached configuration (nodeagent/fastpath.py), in the liveness
   process the agent forked first thing (nodeagent/liveness_process.py), so a restarted
   agent is heard again well within deadtime;
2. the embedded etcd member (supervised child), then the store client and its informer;
   the informer is preloaded from the last copy on disk, so the node knows its groups even
   while the store is unreachable;
3. once the Cluster spec is known: heartbeats reconfigured from it, the liveness view with
   the serving lease inherited from the previous agent, the node's liveness record, the
   reconciler, the leader election and, where the CA key lives, the join endpoint.

SIGTERM stops the node's resources before the agent leaves: nobody would stop them at
the end of the lease otherwise. SIGKILL leaves them running for the next agent to adopt.
The agent records its start, its orderly stop and each loss of its serving lease as
events (nodeagent/agent_events.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from controller.api.cluster import Cluster
from controller.api.fencing import (
    DEFAULT_WATCHDOG_DEVICE,
    FenceAction,
    FenceDevice,
    self_fence_device,
    watchdog_timeout,
)
from controller.api.local_status import local_status_path
from controller.api.meta import ObjectMeta
from controller.api.node import Node, NodeSpec
from controller.bootstrap.node_config import NodeConfig
from controller.bootstrap.pki import read_heartbeat_key
from controller.leader.election import Election
from controller.leader.fencer import Fencer, Result, fence_through_levels
from controller.leader.loop import Leader
from controller.store import keys
from controller.store.base import Put, Store
from controller.store.errors import ConflictError, StoreError
from controller.store.informer import Informer
from controller.store.objects import ObjectStore
from controller.store.records import NodeRecord
from nodeagent import fastpath
from nodeagent.agent_events import AgentEvents
from nodeagent.bootstrap import bootstrap_first_member, node_store, serve_joins
from nodeagent.client_endpoints import keep_client_endpoints
from nodeagent.etcd_member import EtcdMember
from nodeagent.etcd_rejoin import keep_member
from nodeagent.fencing import run_fence_action
from nodeagent.heartbeat.config import HeartbeatConfig, from_cluster_spec
from nodeagent.link_report import LinkReport, merge_node_status
from nodeagent.liveness import HeartbeatLiveness
from nodeagent.liveness_link import LivenessLink
from nodeagent.local_status import Sources, keep_local_status, sources
from nodeagent.metrics.endpoint import AgentMetrics
from nodeagent.metrics.instruments import counting_fence_attempts
from nodeagent.metrics.timed_store import TimedStore
from nodeagent.metrics.webconfig import WebConfig
from nodeagent.reconciler.loop import Reconciler
from nodeagent.registration import Registration
from nodeagent.selffence import WatchdogSettings
from nodeagent.store_cache import CACHE_NAME, load_cache, save_cache_loop
from nodeagent.two_node import TwoNodeSurvivor
from nodeagent.volumes.command import ReplicaFiles
from nodeagent.volumes.supervisor import VolumeSupervisor, store_config_text, write_store_config

log = logging.getLogger(__name__)

FENCE = counting_fence_attempts(run_fence_action)


def _version() -> str:
    try:
        return package_version("vigil")
    except PackageNotFoundError:
        return "unknown"


class Agent:
    def __init__(
        self,
        config: NodeConfig,
        node_config_path: Path,
        *,
        run_dir: Path = Path("/run/vigil"),
        lib_dir: Path = Path("/var/lib/vigil"),
        liveness: LivenessLink,
        netns: str | None = None,
        metrics_web: WebConfig | None = None,
    ) -> None:
        self.config = config
        self.node = config.node
        self.node_config_path = node_config_path
        self.run_dir = run_dir
        self.lib_dir = lib_dir
        self.link = liveness
        self.netns = netns
        self.member: EtcdMember | None = None
        self.store: Store | None = None
        self.informer: Informer | None = None
        self.liveness: HeartbeatLiveness | None = None
        self.reconciler: Reconciler | None = None
        self.events: AgentEvents | None = None
        self._stopping = asyncio.Event()
        self._why_stopping = "stopped"  # AgentStopping's message: a signal, a task that died
        self._failed = False  # a task died: exit non-zero so that the supervisor restarts it
        self._tasks: list[asyncio.Task[Any]] = []
        self._closers: list[Any] = []
        self._started = datetime.now(UTC).isoformat()
        self.link_report = LinkReport(config.node)
        self.metrics = AgentMetrics(config, liveness, _version(), metrics_web)

    # -- life cycle ---------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            await self._start()
            await self._stopping.wait()
            log.info("stopping: resources first, then heartbeats and the store member")
            return 1 if self._failed else 0
        finally:
            await self._shutdown()

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._stopping.is_set():
            self._why_stopping = sig.name
        self._stopping.set()

    async def _start(self) -> None:
        # /metrics first: it answers while the agent waits for its store and spec.
        self._closers.append(self.metrics.close)
        for coro, name in await self.metrics.start():
            self._spawn(coro, name)
        self.member = await self._start_member()
        self.store = TimedStore(node_store(self.config))
        self.informer = Informer(self.store)
        self.metrics.sources.informer = self.informer
        self.metrics.sources.store = self.store
        load_cache(self.lib_dir / CACHE_NAME, self.informer)
        self._spawn(self.informer.run(), "informer")
        cluster = await self._cluster_spec()
        await self._start_heartbeats(cluster)
        self.liveness = HeartbeatLiveness(self.link, self.run_dir / "lease.json", self.node)
        self.liveness.start()
        self.metrics.sources.liveness = self.liveness
        self._start_enforcer()
        self.reconciler = Reconciler(
            self.node,
            self.store,
            self.informer,
            self.liveness,
            run_dir=self.run_dir,
            lib_dir=self.lib_dir,
            netns=self.netns,
        )
        self._spawn(self.reconciler.run(), "reconciler")
        self._start_agent_events(self.reconciler)
        for coro, name in self.metrics.track(self.informer, self.reconciler):
            self._spawn(coro, name)
        supervisor = self._volume_supervisor()
        self.metrics.sources.volumes = lambda: supervisor.last_status
        self._spawn(supervisor.run(), "volumes")
        self._spawn(
            keep_local_status(
                local_status_path(self.run_dir), self._local_status, self.liveness.subscribe()
            ),
            "local-status",
        )
        election = Election(self.store, self.informer, self.node, self.liveness)
        fencer = Fencer(self.store, self.informer, self.node, FENCE)
        leader = Leader(self.store, self.informer, self.node, self.liveness, fencer)
        self._spawn(election.run(leader.run), "election")
        self._start_two_node_roles()
        assert self.informer is not None
        registration = Registration(
            self.store, self.informer, self.node, self._record, self.liveness.subscribe()
        )
        self._spawn(registration.run(), "node-record")
        self._spawn(self._report_links(), "link-events")
        self._spawn(self._register_node(), "node-object")
        self._spawn(self._watch_cluster_spec(), "cluster-spec")
        self._spawn(save_cache_loop(self.lib_dir / CACHE_NAME, self.informer), "store-cache")
        self._spawn(keep_client_endpoints(self.config), "client-endpoints")
        with contextlib.suppress(Exception):
            join = await serve_joins(self.config)
            if join is not None:
                self._closers.append(join.close)
                log.info("serving joins on port %d", join.port)

    def _start_agent_events(self, reconciler: Reconciler) -> None:
        """AgentStarted, ServingLost, and later AgentStopping (nodeagent/agent_events.py)."""
        assert self.store is not None and self.informer is not None
        assert self.liveness is not None
        self.events = AgentEvents(
            self.node,
            self.store,
            self.informer,
            lambda: reconciler.views.values(),
            self.run_dir,
            _version(),
        )
        self._spawn(self.events.record_started(lambda: reconciler.first_look), "agent-started")
        self._spawn(self.events.watch_serving(self.liveness), "serving-losses")

    def _volume_supervisor(self) -> VolumeSupervisor:
        """The replicas of this node's volumes; they keep outdate records in the store with
        this node's client certificate, and use its server certificate for TLS links."""
        assert self.store is not None and self.informer is not None
        p = self.config.pki
        files = ReplicaFiles(
            store_config=self.run_dir / "volumes" / "store.json",
            tls_cert=p.server_cert,
            tls_key=p.server_key,
            tls_ca=p.ca_cert,
        )
        endpoints, cluster = list(self.config.etcd.client_urls), self.config.cluster
        text = store_config_text(endpoints, cluster, p.ca_cert, p.client_cert, p.client_key)
        write_store_config(files.store_config, text)
        return VolumeSupervisor(
            self.node, self.store, self.informer, self.run_dir, files, p.heartbeat_key
        )

    def _start_two_node_roles(self) -> None:
        """In two-node mode: fence a lost peer and carry the store on alone; join the store
        again after being fenced. Idle in majority mode (they read the mode each time)."""
        assert self.store is not None and self.informer is not None
        assert self.liveness is not None and self.member is not None

        async def fence(
            levels: list[list[FenceDevice]], target: str, action: FenceAction
        ) -> Result:
            return await fence_through_levels(levels, target, action, FENCE)

        member = self.member
        survivor = TwoNodeSurvivor(
            self.node, self.store, self.informer, self.liveness, fence, member.force_new_cluster
        )
        self._spawn(survivor.run(), "two-node-survivor")
        tls = self.config.client_tls()
        self._spawn(keep_member(member, self.informer, self.node, tls), "store-member")

    def _start_enforcer(self) -> None:
        """The process that stops resources at the lease's end if this agent cannot; in a
        session of its own so that it outlives the agent. One per node: a second one
        exits at once."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / "enforcer.log").open("ab") as out:
            subprocess.Popen(
                [sys.executable, "-m", "nodeagent.enforcer", "--run-dir", str(self.run_dir)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        if self._stopping.is_set():
            return  # the shutdown cancels them
        if task.cancelled():
            # Nothing but the shutdown cancels these tasks: a loop that ended this way
            # (grpc raising CancelledError for a closed connection did) would leave the
            # node deciding from a frozen copy of the store, silently. Restart whole.
            log.error("task %s was cancelled while the agent runs; stopping the agent",
                      task.get_name())  # fmt: skip
            self._why_stopping = f"task {task.get_name()} was cancelled"
            self._failed = True
            self._stopping.set()
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s died: %r; stopping the agent", task.get_name(), exc)
            self._why_stopping = f"task {task.get_name()} died"
            self._failed = True
            self._stopping.set()

    async def _shutdown(self) -> None:
        # Recorded beside the stops, not before them: the store may not answer.
        said = None
        if self.events is not None:
            said = asyncio.create_task(self.events.record_stopping(self._why_stopping))
        # A resource that would not stop keeps the watchdog armed: the node resets.
        stopped = True
        if self.reconciler is not None:
            stopped = await self.reconciler.stop_all("agent stopping")
        if said is not None:
            with contextlib.suppress(Exception):
                await said  # bounded: agent_events.STOPPING_TIMEOUT
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for close in self._closers:
            with contextlib.suppress(Exception):
                await close()
        if self.liveness is not None:
            self.liveness.stop()
        with contextlib.suppress(Exception):
            await self.link.stop(disarm=stopped)
        if self.store is not None:
            with contextlib.suppress(StoreError):
                await self.store.close()
        if self.member is not None:
            await self.member.stop()

    def _local_status(self) -> Sources:
        assert self.liveness is not None and self.informer is not None
        views = self.reconciler.views.values() if self.reconciler else ()
        return sources(self.node, self.config.cluster, self.liveness, self.informer, views)

    # -- the store member ---------------------------------------------------------------

    async def _start_member(self) -> EtcdMember:
        try:
            return await bootstrap_first_member(self.config, self.node_config_path, within=10.0)
        except Exception as exc:  # no quorum yet: the member must run anyway and catch up
            log.warning("store member not healthy yet (%s); running it without waiting", exc)
            member = EtcdMember(self.config.member_config())
            await member.start()
            return member

    # -- the cluster spec and heartbeats --------------------------------------------------

    async def _cluster_spec(self) -> Cluster:
        assert self.informer is not None
        while True:
            clusters = [
                c for c in self.informer.objects("Cluster").values() if isinstance(c, Cluster)
            ]
            if clusters:
                return clusters[0]
            log.info("waiting for the Cluster spec in the store")
            await asyncio.sleep(0.5)

    def _heartbeat_config(self, cluster: Cluster) -> HeartbeatConfig:
        key = read_heartbeat_key(self.config.pki)
        return from_cluster_spec(cluster.spec, self.node, self.config.cluster, key)

    def _watchdog(self, cluster: Cluster) -> WatchdogSettings | None:
        """This node's self-fencing watchdog: the FenceDevice (agent: watchdog) that
        targets it, as the leader chooses it too (controller.api.fencing). None with
        fencing off: nobody waits for it then, and a reset would only surprise."""
        assert self.informer is not None
        if not cluster.spec.fencing.enabled:
            return None
        devices = [
            d for d in self.informer.objects("FenceDevice").values() if isinstance(d, FenceDevice)
        ]
        device = self_fence_device(devices, self.node)
        if device is None:
            return None
        return WatchdogSettings(
            name=device.name,
            device=device.spec.device or DEFAULT_WATCHDOG_DEVICE,
            timeout=watchdog_timeout(device),
        )

    async def _start_heartbeats(self, cluster: Cluster) -> None:
        wanted = self._heartbeat_config(cluster)
        watchdog = self._watchdog(cluster)
        fastpath.save(wanted, self.config.pki.heartbeat_key, self.lib_dir, watchdog)
        # The liveness process restarts them if the cached configuration was another (a
        # new member, new timings); the same one keeps running untouched.
        await self.link.start(wanted, self.config.pki.heartbeat_key, watchdog)

    async def _watch_cluster_spec(self) -> None:
        assert self.informer is not None
        changed = self.informer.subscribe()
        while True:
            await changed.wait()
            changed.clear()
            clusters = [
                c for c in self.informer.objects("Cluster").values() if isinstance(c, Cluster)
            ]
            watchdog = self._watchdog(clusters[0]) if clusters else None
            if clusters and watchdog != self.link.watchdog and self.link.config is not None:
                # A FenceDevice for this node added, changed or removed: applied at once,
                # without restarting heartbeats (the liveness process sees the same ones).
                log.info("self-fencing watchdog now %s", watchdog or "none")
                fastpath.save(
                    self.link.config, self.config.pki.heartbeat_key, self.lib_dir, watchdog
                )
                await self.link.start(self.link.config, self.config.pki.heartbeat_key, watchdog)
            if clusters and self._heartbeat_config(clusters[0]) != self.link.config:
                log.warning(
                    "the Cluster spec changed: restart the agent to apply new heartbeat settings"
                )
                fastpath.save(
                    self._heartbeat_config(clusters[0]),
                    self.config.pki.heartbeat_key,
                    self.lib_dir,
                    self.link.watchdog,
                )

    # -- what the rest of the cluster sees of this agent --------------------------------

    def _record(self) -> NodeRecord:
        assert self.liveness is not None
        state = self.link.read()
        return NodeRecord(
            node=self.node,
            pid=os.getpid(),
            version=_version(),
            incarnation=state.incarnation or "",
            started=self._started,
            serving=self.liveness.serving(),
            peers=self.link_report.peer_views(state),
            links=state.link_stats,
        )

    async def _report_links(self) -> None:
        """LinkDegraded and LinkRecovered events as the links change (link_report.py)."""
        assert self.liveness is not None and self.store is not None
        changed = self.liveness.subscribe()
        objects = ObjectStore(self.store)
        while True:
            await changed.wait()
            changed.clear()
            views = self.link_report.peer_views(self.link.read())
            events = self.link_report.events(views)
            for event in events:
                level = logging.WARNING if event.type == "Warning" else logging.INFO
                log.log(level, "%s: %s", event.reason, event.message)
            if events:
                try:
                    await objects.commit_with_events([], events)
                except StoreError as exc:
                    log.warning("cannot record the heartbeat link events: %s", exc)
            status = self.link_report.node_status(views)
            if status is not None and not await self._write_link_status(status):
                self.link_report.forget_status()

    async def _write_link_status(self, mine: dict[str, Any]) -> bool:
        """Merge this agent's links and LinkDegraded condition into status/Node/<node>,
        compare-and-swap (the leader writes the phase there)."""
        assert self.store is not None
        key = keys.status_key("Node", self.node)
        for _attempt in range(3):
            try:
                kv = await self.store.get(key)
                data = merge_node_status(kv.value if kv else {}, mine, datetime.now(UTC))
                put = Put(key, data, expect_revision=kv.mod_revision if kv else 0)
                await self.store.commit([put])
                return True
            except ConflictError:
                continue
            except StoreError as exc:
                log.warning("cannot record the heartbeat links in the Node status: %s", exc)
                return False
        return False

    async def _register_node(self) -> None:
        """The Node object of this member, if nobody created one yet (as a kubelet registers
        its Node): `ha get nodes` lists every member, with the phase the leader publishes."""
        assert self.store is not None
        node = Node(
            api_version="ha.vigil.dev/v1alpha1",
            kind="Node",
            metadata=ObjectMeta(name=self.node),
            spec=NodeSpec(),
        )
        delay = 0.5
        while True:
            try:
                if await ObjectStore(self.store).create(node):
                    log.info("registered Node %s", self.node)
                return
            except StoreError as exc:
                log.debug("registering Node %s: %s", self.node, exc)
                await asyncio.sleep(delay)
                delay = min(2 * delay, 10.0)

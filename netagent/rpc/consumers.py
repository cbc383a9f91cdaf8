"""Consumers of the server's notifications to L2 agents (§4.3, §5.2).

Handlers only record "this changed" on a :class:`NotificationSink` and return: casts can
arrive out of order, so the source's worker fetches the current details itself
(style guide §5). The server's pushes of Port and AddressGroup objects are read the same
way, as "these groups' members may have changed" (:mod:`netagent.rpc.pushes`). The
exception is l2population, whose FDB casts are the data (there is
no call to fetch it); they are handed over as received and validated by the sink.

One RPC server per topic, each with ``Target(topic=T, server=host)`` and the threading
executor. Every endpoint declares version "1.5", the highest minor the server sends on
these topics (§1.5). A cast for a method no endpoint has, or with a version none
accepts, is logged once per (topic, method, version) and dropped, instead of one
traceback per message. Every endpoint also takes ``netagent_probe``, the agent's own cast
through its own consumers (:mod:`netagent.rpc.probe`).
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import oslo_messaging
from oslo_messaging.rpc import server as rpc_server

from netagent.model import validate as v
from netagent.rpc import pushes
from netagent.rpc.rejects import REJECTIONS
from netagent.rpc.report import RESOURCE_VERSIONS

LOG = logging.getLogger(__name__)

PREFIX = "q-agent-notifier"
ENDPOINT_VERSION = "1.5"


def topic(resource: str, operation: str) -> str:
    """Neutron's notifier topic name ``q-agent-notifier-<resource>-<operation>``."""
    return f"{PREFIX}-{resource}-{operation}"


class NotificationSink(Protocol):
    """What the handlers report to. Every method must be thread-safe and return quickly."""

    def port_changed(self, port_id: str) -> None:
        """A port changed (update, binding activated): refetch its details."""

    def port_deleted(self, port_id: str) -> None:
        """A port was deleted."""

    def port_deactivated(self, port_id: str) -> None:
        """The port's binding on this host was deactivated (live migration source)."""

    def network_changed(self, network_id: str) -> None:
        """A network changed or was deleted: refetch the local ports on it."""

    def security_groups_changed(self, group_ids: Sequence[str]) -> None:
        """Rules or members of these security groups changed."""

    def tunnel_endpoint_changed(
        self, operation: str, tunnel_ip: object, tunnel_type: object
    ) -> None:
        """A tunnel endpoint was announced (``update``) or removed (``delete``), unvalidated.

        Applied to the local view directly: calling ``tunnel_sync`` in answer would make
        the server cast ``tunnel_update`` to every agent again, a feedback loop.
        """

    def fdb_received(self, operation: str, fdb_entries: object) -> None:
        """An l2population FDB cast (``add``, ``remove`` or ``update``), unvalidated."""

    def routers_changed(self, router_ids: Sequence[str]) -> None:
        """These routers changed or were scheduled here: fetch them again."""

    def router_gone(self, router_id: str) -> None:
        """This router was deleted or unscheduled from this host."""

    def request_full(self, reason: str) -> None:
        """Fetch everything again (the L3 agent row was set up or down)."""

    def probe_returned(self, topic: str, token: object, seq: object) -> None:
        """The agent's own probe came back through the consumer of ``topic``, unvalidated
        (:mod:`netagent.rpc.probe`)."""


def _valid_id(method: str, field: str, value: object) -> bool:
    """Whether ``value`` is a resource id (a UUID); rejected (logged once) if not."""
    try:
        v.uuid(value)
    except v.FieldError:
        REJECTIONS.reject(method, f"{field} is not a UUID", value)
        return False
    return True


def _id_of(method: str, what: str, resource: object) -> str | None:
    """The ``id`` of a resource dict from a cast, or ``None`` (rejected, logged once)."""
    if not isinstance(resource, dict):
        REJECTIONS.reject(method, f"{what} is not an object", resource)
        return None
    value = resource.get("id")
    if not _valid_id(method, f"{what} id", value):
        return None
    assert isinstance(value, str)
    return value


class _Endpoint:
    target = oslo_messaging.Target(version=ENDPOINT_VERSION)

    def __init__(self, sink: NotificationSink, host: str, topic_name: str = "") -> None:
        self._sink = sink
        self._host = host
        self._topic = topic_name

    def netagent_probe(self, context: Any, token: Any = None, seq: Any = None) -> None:
        """The agent's own probe (not Neutron's): it came through this consumer."""
        self._sink.probe_returned(self._topic, token, seq)


class PortEndpoint(_Endpoint):
    """``port_update`` / ``port_delete`` (message version 1.0)."""

    def port_update(
        self,
        context: Any,
        port: Any = None,
        network_type: Any = None,
        segmentation_id: Any = None,
        physical_network: Any = None,
    ) -> None:
        port_id = _id_of("port_update", "port", port)
        if port_id is not None:
            LOG.debug("port_update for port %s", port_id)
            self._sink.port_changed(port_id)

    def port_delete(self, context: Any, port_id: Any = None) -> None:
        if _valid_id("port_delete", "port_id", port_id):
            LOG.debug("port_delete for port %s", port_id)
            self._sink.port_deleted(port_id)


class NetworkEndpoint(_Endpoint):
    """``network_update`` (1.4) / ``network_delete`` (1.0)."""

    def network_update(self, context: Any, network: Any = None) -> None:
        network_id = _id_of("network_update", "network", network)
        if network_id is not None:
            LOG.debug("network_update for network %s", network_id)
            self._sink.network_changed(network_id)

    def network_delete(self, context: Any, network_id: Any = None) -> None:
        if _valid_id("network_delete", "network_id", network_id):
            LOG.debug("network_delete for network %s", network_id)
            self._sink.network_changed(network_id)


class BindingEndpoint(_Endpoint):
    """``binding_activate`` / ``binding_deactivate`` (1.5); only for this host."""

    def binding_activate(self, context: Any, port_id: Any = None, host: Any = None) -> None:
        if host == self._host and _valid_id("binding_activate", "port_id", port_id):
            self._sink.port_changed(port_id)

    def binding_deactivate(
        self, context: Any, port_id: Any = None, host: Any = None, network_id: Any = None
    ) -> None:
        if host == self._host and _valid_id("binding_deactivate", "port_id", port_id):
            self._sink.port_deactivated(port_id)


class SecurityGroupEndpoint(_Endpoint):
    """``security_groups_rule_updated`` / ``security_groups_member_updated`` (1.1)."""

    def security_groups_rule_updated(self, context: Any, security_groups: Any = None) -> None:
        self._groups("rule", security_groups)

    def security_groups_member_updated(self, context: Any, security_groups: Any = None) -> None:
        self._groups("member", security_groups)

    def _groups(self, what: str, security_groups: Any) -> None:
        method = f"security_groups_{what}_updated"
        if not isinstance(security_groups, list):
            REJECTIONS.reject(method, "security_groups is not a list", security_groups)
            return
        groups = [g for g in security_groups if _valid_id(method, "group id", g)]
        LOG.debug("Security group %s update for %s", what, groups)
        if groups:
            self._sink.security_groups_changed(groups)


class TunnelEndpoint(_Endpoint):
    """``tunnel_update`` / ``tunnel_delete`` (1.0)."""

    def tunnel_update(
        self, context: Any, tunnel_ip: Any = None, tunnel_type: Any = None, tunnel_id: Any = None
    ) -> None:
        self._sink.tunnel_endpoint_changed("update", tunnel_ip, tunnel_type)

    def tunnel_delete(self, context: Any, tunnel_ip: Any = None, tunnel_type: Any = None) -> None:
        self._sink.tunnel_endpoint_changed("delete", tunnel_ip, tunnel_type)


class L2populationEndpoint(_Endpoint):
    """``add_fdb_entries`` / ``remove_fdb_entries`` / ``update_fdb_entries`` (1.0)."""

    def add_fdb_entries(self, context: Any, fdb_entries: Any = None, host: Any = None) -> None:
        self._fdb("add", fdb_entries, host)

    def remove_fdb_entries(self, context: Any, fdb_entries: Any = None, host: Any = None) -> None:
        self._fdb("remove", fdb_entries, host)

    def update_fdb_entries(self, context: Any, fdb_entries: Any = None, host: Any = None) -> None:
        self._fdb("update", fdb_entries, host)

    def _fdb(self, operation: str, fdb_entries: Any, host: Any) -> None:
        if host is not None and host != self._host:
            return
        self._sink.fdb_received(operation, fdb_entries)


class ObjectPushEndpoint(_Endpoint):
    """``push`` (1.1) of Port and AddressGroup objects: a trigger for member updates
    that the legacy casts miss (:mod:`netagent.rpc.pushes`)."""

    def __init__(self, sink: NotificationSink, host: str, topic_name: str = "") -> None:
        super().__init__(sink, host, topic_name)
        self._tracker = pushes.MembershipTracker()

    def push(self, context: Any, resource_list: Any = None, event_type: Any = None) -> None:
        groups = self._tracker.groups_changed(resource_list, event_type)
        if groups:
            LOG.debug("Object push: members of %s may have changed", sorted(groups))
            self._sink.security_groups_changed(sorted(groups))


def object_topic(object_type: str) -> str:
    """The fanout topic of the server's pushes of ``object_type`` at the version this
    agent reports in ``resource_versions`` (the server pushes every version reported)."""
    return f"neutron-vo-{object_type}-{RESOURCE_VERSIONS[object_type]}"


def _router_ids(method: str, value: Any) -> list[str]:
    """Router ids from a ``routers``/``payload`` list of ids (or of dicts, old senders);
    anything else rejected (logged once per kind)."""
    if not isinstance(value, list):
        REJECTIONS.reject(method, "routers is not a list", value)
        return []
    ids: list[str] = []
    for item in value:
        router_id = item.get("id") if isinstance(item, dict) else item
        if _valid_id(method, "router id", router_id):
            ids.append(str(router_id))
    return ids


class L3AgentEndpoint(_Endpoint):
    """The L3 agent's notifications on ``l3_agent`` (§6.3)."""

    def routers_updated(self, context: Any, routers: Any = None) -> None:
        ids = _router_ids("routers_updated", routers)
        LOG.debug("routers_updated for %s", ids)
        if ids:
            self._sink.routers_changed(ids)

    def router_added_to_agent(self, context: Any, payload: Any = None) -> None:
        # a call: returning (None) answers it, or the server's API request would block
        ids = _router_ids("router_added_to_agent", payload)
        LOG.debug("router_added_to_agent for %s", ids)
        if ids:
            self._sink.routers_changed(ids)

    def router_deleted(self, context: Any, router_id: Any = None) -> None:
        if _valid_id("router_deleted", "router_id", router_id):
            LOG.debug("router_deleted for %s", router_id)
            self._sink.router_gone(router_id)

    def router_removed_from_agent(self, context: Any, payload: Any = None) -> None:
        router_id = payload.get("router_id") if isinstance(payload, dict) else None
        if _valid_id("router_removed_from_agent", "router_id", router_id):
            LOG.debug("router_removed_from_agent for %s", router_id)
            self._sink.router_gone(str(router_id))

    def agent_updated(self, context: Any, payload: Any = None) -> None:
        up = payload.get("admin_state_up") if isinstance(payload, dict) else None
        self._sink.request_full(f"L3 agent admin_state_up set to {up}")


class _LogOnceDispatcher(oslo_messaging.RPCDispatcher):  # type: ignore[misc]
    """Turns dispatch errors into one warning per (topic, method, version).

    The server logs :class:`~oslo_messaging.ExpectedException` at DEBUG only; for a call,
    the original error still goes back to the caller.
    """

    def __init__(self, endpoints: list[object], topic_name: str) -> None:
        super().__init__(endpoints, oslo_messaging.NoOpSerializer())
        self._endpoints_ = endpoints
        self._topic = topic_name
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def dispatch(self, incoming: Any) -> Any:
        message = incoming.message if isinstance(incoming.message, dict) else {}
        method, args = message.get("method"), message.get("args", {})
        if not self._arguments_fit(method, args):
            shown = ", ".join(sorted(map(str, args))) if isinstance(args, dict) else args
            REJECTIONS.reject(str(method), "arguments do not match the method", shown)
            raise oslo_messaging.ExpectedException()
        try:
            return super().dispatch(incoming)
        except (oslo_messaging.NoSuchMethod, oslo_messaging.UnsupportedVersion) as exc:
            message = incoming.message if isinstance(incoming.message, dict) else {}
            key = (str(message.get("method")), str(message.get("version", "1.0")))
            with self._lock:
                first = key not in self._seen
                self._seen.add(key)
            log = LOG.warning if first else LOG.debug
            log(
                "Ignoring %s version %s on %s: %s (netagent speaks version %s; logged once)",
                key[0],
                key[1],
                self._topic,
                type(exc).__name__,
                ENDPOINT_VERSION,
            )
            raise oslo_messaging.ExpectedException() from exc

    def _arguments_fit(self, method: object, args: object) -> bool:
        """False for a known method whose arguments cannot bind to it (a TypeError in
        the handler otherwise, logged with a traceback by oslo.messaging)."""
        if not isinstance(method, str) or method.startswith("_"):
            return True  # NoSuchMethod, below
        for endpoint in self._endpoints_:
            handler = getattr(endpoint, method, None)
            if callable(handler):
                if not isinstance(args, dict) or not all(isinstance(k, str) for k in args):
                    return False
                try:
                    inspect.signature(handler).bind(None, **args)
                except TypeError:
                    return False
                return True
        return True


#: (topic, endpoint class) of every consumer, in start order.
CONSUMERS: tuple[tuple[str, type[_Endpoint]], ...] = (
    (topic("port", "update"), PortEndpoint),
    (topic("port", "delete"), PortEndpoint),
    (topic("network", "update"), NetworkEndpoint),
    (topic("network", "delete"), NetworkEndpoint),
    (topic("binding", "activate"), BindingEndpoint),
    (topic("binding", "deactivate"), BindingEndpoint),
    (topic("security_group", "update"), SecurityGroupEndpoint),
    (topic("tunnel", "update"), TunnelEndpoint),
    (topic("tunnel", "delete"), TunnelEndpoint),
    (topic("l2population", "update"), L2populationEndpoint),
    (object_topic("Port"), ObjectPushEndpoint),
    (object_topic("AddressGroup"), ObjectPushEndpoint),
)


#: The L3 identity's consumer (§6.3): direct ``l3_agent.<host>`` and ``l3_agent_fanout``.
L3_CONSUMERS: tuple[tuple[str, type[_Endpoint]], ...] = (("l3_agent", L3AgentEndpoint),)


class Consumers:
    """The RPC servers of all notifier topics for one host.

    Each server consumes the fanout exchange ``T_fanout``, the shared queue ``T`` and the
    direct queue ``T.<host>`` (§1.1), so l2population's host-directed casts arrive too.

    :param transport: the RPC transport.
    :param host: this agent's host name.
    :param sink: where handlers report.
    :param l3: also consume the L3 agent's topic.
    """

    def __init__(
        self, transport: Any, host: str, sink: NotificationSink, l3: bool = False
    ) -> None:
        self.servers: list[Any] = []
        #: the topic of each server, in order
        self.topics: list[str] = []
        for topic_name, endpoint_cls in CONSUMERS + (L3_CONSUMERS if l3 else ()):
            self.topics.append(topic_name)
            target = oslo_messaging.Target(topic=topic_name, server=host)
            dispatcher = _LogOnceDispatcher([endpoint_cls(sink, host, topic_name)], topic_name)
            self.servers.append(rpc_server.RPCServer(transport, target, dispatcher))

    def start(self) -> None:
        """Start consuming (declares the queues and exchanges)."""
        for server in self.servers:
            server.start()

    def stop(self) -> None:
        """Stop consuming and wait for running handlers. Idempotent.

        The servers stop side by side: each one's stop waits for its listener's poll to
        return (about a second), so stopping a dozen one after the other took 9 s.
        """
        threads = [
            threading.Thread(target=_stop_and_wait, args=(s,), name="rpc-stop", daemon=True)
            for s in self.servers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _stop_and_wait(server: Any) -> None:
    try:
        server.stop()
    except Exception:  # stop of a never-started server
        LOG.debug("RPC server stop failed", exc_info=True)
        return
    try:
        server.wait()
    except Exception:
        LOG.debug("RPC server wait failed", exc_info=True)

"""How a router port's host end reaches the L2 driver.

With the Linux bridge L2 driver nothing is needed: it finds the host end ``tap<port>`` by
name and puts it in the network's bridge. With Open vSwitch the host end must be on the
integration bridge with os-vif's ``external_ids`` (``iface-id``, ``attached-mac``,
``iface-status``) -- the L2 driver finds ports by ``iface-id`` -- as Neutron's OVS
interface driver does for its L3 agent. On a userspace (``netdev``) datapath the router
end also computes its own checksums: that datapath forwards a veth's partial checksums
as they are, and TCP to and through the router would fail.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from netagent.linux import ethtool, ip_lib
from netagent.ovs import ovsdb as db

LOG = logging.getLogger(__name__)


class HostPlug:
    """Nothing to do: the L2 driver finds the host end by name (Linux bridge)."""

    def plug(self, ports: Sequence[tuple[str, str, str, str, str]]) -> None:
        """Make the L2 driver able to find these ports.

        :param ports: ``(port id, mac, host end, namespace, router end)`` each; the devices
            exist.
        """

    def unplug(self, host_ends: Sequence[str]) -> None:
        """Forget these host ends (their devices are deleted or about to be)."""

    def close(self) -> None:
        """Release connections."""


class OvsPlug(HostPlug):
    """The host end on the integration bridge, as os-vif plugs a VM.

    :param bridge: the integration bridge (``[ovs] integration_bridge``)
    :param connection: ``[ovs] ovsdb_connection``
    :param netns: the namespace of the host ends (``None``: the agent's own)
    """

    def __init__(
        self, bridge: str, connection: str, timeout: int, netns: str | None = None
    ) -> None:
        self.netns = netns
        self.bridge = bridge
        self.connection = connection
        self.timeout = timeout
        self._ovsdb: db.Ovsdb | None = None
        self._lock = threading.Lock()

    def _db(self) -> db.Ovsdb:
        with self._lock:
            if self._ovsdb is None:
                self._ovsdb = db.Ovsdb(self.connection, self.timeout)
            return self._ovsdb

    def plug(self, ports: Sequence[tuple[str, str, str, str, str]]) -> None:
        """Attach the host ends not yet on the bridge with the right ``iface-id`` (one
        transaction); on a ``netdev`` bridge, router ends compute their own checksums.

        :raises OvsdbError: the bridge is missing or the transaction failed.
        """
        if not ports:
            return
        conn = self._db()
        state = conn.snapshot()
        if self.bridge not in state.bridges:
            raise db.OvsdbError(f"no bridge {self.bridge}: the L2 driver has not made it yet")
        ops: list[Any] = []
        for port_id, mac, host_end, _, _ in ports:
            iface = state.interfaces.get(host_end)
            ids = {"iface-id": port_id, "attached-mac": mac, "iface-status": "active"}
            if (
                iface is not None
                and iface.bridge == self.bridge
                and all(iface.external_ids.get(k) == val for k, val in ids.items())
            ):
                continue
            ops.append(db.AttachInterface(self.bridge, host_end, ids))
        if ops:
            conn.apply(ops)
            LOG.info("Router ports %s attached to %s", [o.name for o in ops], self.bridge)
        # up, as os-vif leaves a VM's tap: until the L2 driver has tagged the port its
        # flows drop what comes in (fail closed)
        batch = ip_lib.Batch(self.netns)
        for _, _, host_end, _, _ in ports:
            batch.add(ip_lib.SetLink(name=host_end, up=True))
        for failed in batch.send():
            raise failed.error
        if state.datapath_types.get(self.bridge) == "netdev":
            for _, _, _, namespace, router_end in ports:
                if ethtool.tx_checksumming(router_end, namespace=namespace):
                    ethtool.set_tx_checksumming(router_end, False, namespace=namespace)

    def unplug(self, host_ends: Sequence[str]) -> None:
        """Delete the integration bridge's ports of these host ends (one transaction).

        :raises OvsdbError: the transaction failed.
        """
        if not host_ends:
            return
        conn = self._db()
        interfaces = conn.snapshot().interfaces
        ops: list[Any] = [
            db.DeletePort(self.bridge, iface.port)
            for iface in (interfaces.get(name) for name in host_ends)
            if iface is not None and iface.bridge == self.bridge
        ]
        if ops:
            conn.apply(ops)
            LOG.info("Router ports %s removed from %s", [o.name for o in ops], self.bridge)

    def close(self) -> None:
        with self._lock:
            if self._ovsdb is not None:
                self._ovsdb.close()
                self._ovsdb = None


def from_conf(conf: Any, netns: str | None = None) -> HostPlug:
    """The plug the host's L2 driver needs (``[agent] l2_driver``).

    :param netns: the namespace of the host ends (``None``: the agent's own)
    """
    agent = getattr(conf, "agent", None)
    if getattr(agent, "l2_driver", None) != "openvswitch":
        return HostPlug()
    group = conf.ovs
    return OvsPlug(group.integration_bridge, group.ovsdb_connection, group.ovsdb_timeout, netns)

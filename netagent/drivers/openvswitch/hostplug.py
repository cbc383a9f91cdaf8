"""Router ports on the integration bridge: the Open vSwitch L2 driver's host plug.

With Open vSwitch the host end of a router port must be on the integration bridge with
os-vif's ``external_ids`` (``iface-id``, ``attached-mac``, ``iface-status``) -- the L2
driver finds ports by ``iface-id`` -- as Neutron's OVS interface driver does for its L3
agent. It goes through the L2 driver's OVSDB connection and its snapshot of the pass (one
read for all the routers of a pass, however many: a restart with 200 routers and nothing
to attach reads once). On a userspace (``netdev``) datapath the router end also computes
its own checksums: that datapath forwards a veth's partial checksums as they are, and TCP
to and through the router would fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from netagent.drivers import base
from netagent.linux import ethtool, ip_lib
from netagent.ovs import ovsdb as db

LOG = logging.getLogger(__name__)


class OvsHostPlug(base.HostPlug):
    """The host end on the integration bridge, as os-vif plugs a VM.

    :param bridge: the integration bridge
    :param state: the L2 driver's OVSDB snapshot (the pass's, inside a pass)
    :param commit: the L2 driver's transaction (drops the snapshot it makes stale)
    :param netns: the namespace of the host ends (``None``: the agent's own)
    """

    def __init__(
        self,
        bridge: str,
        state: Callable[[], db.OvsdbState],
        commit: Callable[[Sequence[db.Op]], None],
        netns: str | None = None,
    ) -> None:
        self.bridge = bridge
        self.netns = netns
        self._state = state
        self._commit = commit

    def plug(self, ports: Sequence[base.HostEnd]) -> None:
        """Attach the host ends not yet on the bridge with the right ``iface-id`` (one
        transaction); on a ``netdev`` bridge, router ends compute their own checksums.

        :raises OvsdbError: the bridge is missing or the transaction failed.
        """
        if not ports:
            return
        state = self._state()
        if self.bridge not in state.bridges:
            raise db.OvsdbError(f"no bridge {self.bridge}: the L2 driver has not made it yet")
        ops: list[db.Op] = []
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
            self._commit(ops)
            LOG.info("Router ports %s attached to %s", [op.name for op in ops], self.bridge)
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
        interfaces = self._state().interfaces
        ops: list[db.Op] = [
            db.DeletePort(self.bridge, iface.port)
            for iface in (interfaces.get(name) for name in host_ends)
            if iface is not None and iface.bridge == self.bridge
        ]
        if ops:
            self._commit(ops)
            LOG.info("Router ports %s removed from %s", [op.name for op in ops], self.bridge)

"""Per-network conntrack zones for the iptables firewall driver.

Tenants reuse address ranges; without zones, two networks of one host with overlapping
addresses share conntrack entries, and a packet of one network that matches an entry of
the other is ESTABLISHED and accepted by its port chains. Each network with filtered ports
here gets its own zone, assigned in table ``raw`` (both families) by one rule per network,
``-i brq<net> -j CT --zone Z``, in chain :data:`ZONE_CHAIN` jumped to from ``PREROUTING``.
With br_netfilter a bridged packet's PREROUTING in-device is the bridge (checked on the
target kernel), so the rule covers every tap and the uplink of the network.

With the hybrid plug (Open vSwitch) every port has its own bridge ``qbr<port>`` between
its tap and its ``qvb`` veth to br-int, so the rule is one per port,
``-i qbr<port> -j CT --zone Z(network)``: both directions of the port's traffic cross its
qbr, and every port of a network shares the network's zone.

Zones are stable: the preferred zone of a network is derived from its id (SHA-256 into
:data:`ZONE_MIN`..:data:`ZONE_MAX`); a collision with a network already holding that zone
probes upwards; allocations are kept in ``<state_path>/conntrack-zones.json`` so that the
outcome of a collision does not depend on the order networks show up after a restart.

Fail-closed order: :meth:`NetworkZones.prepare` installs the rules of new networks before
the filter table is written, :meth:`NetworkZones.finish` removes the rules of networks with
no filtered ports left after it. The rules have their own :class:`IptablesManager` on the
driver's namespace (only table raw; one restore per family) so that they can be committed
ahead of the filter table.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import tempfile
from collections.abc import Iterable

from netagent.common import names
from netagent.drivers.iptables_firewall import conntrack_cleanup as ct
from netagent.linux.conntrack import ZONE_MAX, ZONE_MIN, ConntrackFilter
from netagent.linux.iptables import CTZone, InIface, IptablesManager, Jump, Rule
from netagent.model.port import Port
from netagent.model.secgroup import SecurityGroupRule

LOG = logging.getLogger(__name__)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ZONE_CHAIN = "na-ct-net"
STATE_FILE = "conntrack-zones.json"
_SPAN = ZONE_MAX - ZONE_MIN + 1


def preferred_zone(network_id: str) -> int:
    """The zone a network gets unless another network already holds it."""
    digest = hashlib.sha256(network_id.encode()).digest()
    return ZONE_MIN + int.from_bytes(digest[:8], "big") % _SPAN


class NetworkZones:
    """Zones of the networks with filtered ports, and their raw-table rules.

    :param iptables: a manager on the driver's namespace used for table raw only
    :param state_path: directory for the allocation file (``None``: kept in memory)
    :param hybrid: ports sit on their own ``qbr`` bridges (Open vSwitch hybrid plug), not
        on their network's ``brq`` bridge
    """

    def __init__(
        self, iptables: IptablesManager, state_path: str | None = None, hybrid: bool = False
    ) -> None:
        self._ipt = iptables
        self.hybrid = hybrid
        self._file = None if state_path is None else os.path.join(state_path, STATE_FILE)
        self._zones: dict[str, int] = self._load()
        #: (bridge, network) pairs whose rule is declared (the last set given to the manager)
        self._declared: frozenset[tuple[str, str]] | None = None
        #: (bridge, network) pairs whose rule the kernel has (as of the last successful apply)
        self._installed: frozenset[tuple[str, str]] = frozenset()
        #: internal switch (tests): False assigns no zones and scopes no deletions
        self.enabled = True
        #: bridge -> zone a Neutron Linux bridge agent used (:meth:`adopt`)
        self._adopted: dict[str, int] = {}

    # -- allocation ---------------------------------------------------------------------

    def _load(self) -> dict[str, int]:
        if self._file is None:
            return {}
        try:
            with open(self._file, encoding="utf-8") as fh:
                raw = json.load(fh)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            LOG.warning("Ignoring unreadable %s: %s", self._file, exc)
            return {}
        out: dict[str, int] = {}
        if isinstance(raw, dict):
            for key, zone in sorted(raw.items()):
                ok = isinstance(zone, int) and ZONE_MIN <= zone <= ZONE_MAX
                if isinstance(key, str) and ok and zone not in out.values():
                    out[key] = zone
        return out

    def _save(self) -> None:
        if self._file is None:
            return
        directory = os.path.dirname(self._file)
        try:
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".zones-", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._zones, fh, sort_keys=True)
            os.replace(tmp, self._file)
        except OSError as exc:
            LOG.warning("conntrack zones not saved to %s: %s", self._file, exc)

    def adopt(self, zones_by_bridge: dict[str, int]) -> None:
        """Give networks without a zone yet the zone a Neutron Linux bridge agent gave
        their bridge (same range, per network too): its connections' conntrack entries
        stay valid through a takeover."""
        self._adopted = {
            bridge: zone
            for bridge, zone in zones_by_bridge.items()
            if ZONE_MIN <= zone <= ZONE_MAX
        }

    def zone_of(self, network_id: str) -> int:
        """The zone of ``network_id``, allocated (and saved) on first use."""
        zone = self._zones.get(network_id)
        if zone is None:
            used = set(self._zones.values())
            if len(used) >= _SPAN:
                raise ValueError("conntrack zones exhausted")
            adopted = self._adopted.get(names.network_bridge(network_id))
            zone = adopted if adopted is not None else preferred_zone(network_id)
            if adopted is not None and adopted not in used:
                LOG.info(
                    "Network %s keeps the Neutron agent's conntrack zone %d", network_id, zone
                )
            while zone in used:
                zone = ZONE_MIN + (zone - ZONE_MIN + 1) % _SPAN
            self._zones[network_id] = zone
            self._save()
        return zone

    def release(self, keep: Iterable[str]) -> None:
        """Forget the allocations of networks not in ``keep``."""
        wanted = set(keep)
        gone = [n for n in self._zones if n not in wanted]
        for network_id in gone:
            del self._zones[network_id]
        if gone:
            self._save()

    # -- rules --------------------------------------------------------------------------

    def bridge_of(self, port: Port) -> str:
        """The bridge whose zone rule covers ``port``: ``qbr<port>`` with the hybrid plug,
        else the network's ``brq<net>``."""
        if self.hybrid:
            return names.hybrid_bridge(port.id)
        return names.network_bridge(port.network_id)

    def _pairs(self, ports: Iterable[Port]) -> frozenset[tuple[str, str]]:
        return frozenset((self.bridge_of(p), p.network_id) for p in ports)

    def _declare(self, pairs: Iterable[tuple[str, str]]) -> bool:
        wanted = frozenset(pairs) if self.enabled else frozenset()
        if wanted == self._declared:
            return False
        rules = [
            Rule((InIface(bridge),), CTZone(self.zone_of(network)))
            for bridge, network in sorted(wanted)
        ]
        for family in (4, 6):
            if rules:
                self._ipt.set_chain(family, "raw", ZONE_CHAIN, rules)
                self._ipt.set_jumps(family, "raw", "PREROUTING", [Rule((), Jump(ZONE_CHAIN))])
            else:
                self._ipt.clear_jumps(family, "raw", "PREROUTING")
                self._ipt.remove_chain(family, "raw", ZONE_CHAIN)
        self._declared = wanted
        return True

    def _commit(self, pairs: Iterable[tuple[str, str]], always: bool) -> set[str]:
        wanted = frozenset(pairs) if self.enabled else frozenset()
        if not self._declare(wanted) and not always:
            return set()
        result = self._ipt.apply()  # no restore unless something changed or was damaged
        if result.ok:
            self._installed = wanted
            return set()
        LOG.error("conntrack zone rules not applied: %s", result.failed)
        self._declared = None  # declared again (and retried) by the next pass
        # A failed restore changed nothing: bridges whose rule was in place keep it.
        return {bridge for bridge, _ in wanted - self._installed}

    def prepare(self, ports: Iterable[Port]) -> set[str]:
        """Install the rules of the bridges of ``ports`` (added to those in place).

        :returns: bridges (:meth:`bridge_of`) whose rule may be missing (their ports must
            forward nothing)
        """
        return self._commit(self._pairs(ports) | self._installed, always=True)

    def finish(self, ports: Iterable[Port]) -> None:
        """Remove the rules of bridges no port in ``ports`` is on, and the allocations of
        networks none is on."""
        port_list = list(ports)
        self._commit(self._pairs(port_list), always=False)
        self.release(p.network_id for p in port_list)

    def sweep(self, ports: Iterable[Port]) -> list[str]:
        """Reconcile with ``ports`` and delete undeclared netagent chains of table raw."""
        self.finish(ports)
        result = self._ipt.apply(sweep=True)
        return [f"iptables IPv{k.family} {k.table} {k.chain}" for k in result.applied]

    def cleanup(self) -> list[str]:
        """Remove every zone rule (conntrack then follows no zones in the namespace)."""
        self._declare(())
        self._declared = None
        self._installed = frozenset()
        result = self._ipt.apply(sweep=True)
        return [f"iptables IPv{k.family} {k.table} {k.chain}" for k in result.applied]

    # -- conntrack deletions ------------------------------------------------------------

    def scope(self, filters: Iterable[ConntrackFilter], port: Port) -> list[ConntrackFilter]:
        """``filters`` limited to the zone of ``port``'s network, and zone 0.

        Zone 0 holds what no zone rule covered: entries made before the rule existed
        (an upgrade) and traffic of a tap not on its network's ``brq`` bridge. Those must
        go too for a removed rule to cut its connections; they are not another network's
        zoned entries, which stay.
        """
        if not self.enabled:
            return list(filters)
        zone = self.zone_of(port.network_id)
        return [dataclasses.replace(f, zone=z) for f in filters for z in (zone, 0)]

    def for_port(self, port: Port) -> list[ConntrackFilter]:
        """:func:`.conntrack_cleanup.for_port` in the zone of the port's network."""
        return self.scope(ct.for_port(port), port)

    def for_removed_rules(
        self, rules: Iterable[SecurityGroupRule], ports: Iterable[Port]
    ) -> list[ConntrackFilter]:
        """:func:`.conntrack_cleanup.for_removed_rules`, per network of ``ports``."""
        rule_list = list(rules)
        if not self.enabled:
            return ct.for_removed_rules(rule_list, ports)
        out: list[ConntrackFilter] = []
        for members in self._per_network(ports):
            out += self.scope(ct.for_removed_rules(rule_list, members), members[0])
        return out

    def for_removed_members(
        self, removed: Iterable[IPNetwork], ports: Iterable[Port]
    ) -> list[ConntrackFilter]:
        """:func:`.conntrack_cleanup.for_removed_members`, per network of ``ports``."""
        nets = list(removed)
        if not self.enabled:
            return ct.for_removed_members(nets, ports)
        out: list[ConntrackFilter] = []
        for members in self._per_network(ports):
            out += self.scope(ct.for_removed_members(nets, members), members[0])
        return out

    @staticmethod
    def _per_network(ports: Iterable[Port]) -> list[list[Port]]:
        by_net: dict[str, list[Port]] = {}
        for port in ports:
            by_net.setdefault(port.network_id, []).append(port)
        return [by_net[n] for n in sorted(by_net)]

"""ARP suppression of the Linux bridge driver: wanted entries and diffs (no kernel)."""

from __future__ import annotations

import ipaddress

from netagent.drivers.base import NetworkPlan, RemotePort
from netagent.drivers.linuxbridge import neighbours
from netagent.model.network import Network, NetworkType

NET = Network(
    id="8d3f1c2e-0000-4000-8000-000000000001",
    name="",
    network_type=NetworkType.VXLAN,
    segmentation_id=100,
    physical_network=None,
    mtu=1450,
)
LOCAL = "198.18.0.1"


def remote(mac: str, tunnel: str, *ips: str) -> RemotePort:
    return RemotePort(
        mac_address=mac,
        ip_addresses=tuple(ipaddress.ip_address(ip) for ip in ips),
        tunnel_ip=ipaddress.ip_address(tunnel),
    )


def test_wanted_ipv4_only_skips_local_and_resolves_conflicts() -> None:
    plan = NetworkPlan(
        NET,
        {},
        (
            remote("FA:16:3E:00:00:02", "198.18.0.2", "192.0.2.2", "fd00::2"),
            remote("fa:16:3e:00:00:01", "198.18.0.3", "192.0.2.2", "192.0.2.3"),
            remote("fa:16:3e:00:00:09", LOCAL, "192.0.2.9"),  # ours: not remote
        ),
    )
    want = neighbours.wanted(plan, LOCAL)
    # a doubly claimed address goes to the lowest MAC, whatever the order
    assert dict(want.arp) == {"192.0.2.2": "fa:16:3e:00:00:01", "192.0.2.3": "fa:16:3e:00:00:01"}
    assert want.macs == {"fa:16:3e:00:00:01", "fa:16:3e:00:00:02"}
    reversed_plan = NetworkPlan(NET, {}, tuple(reversed(plan.remote_ports)))
    assert neighbours.wanted(reversed_plan, LOCAL) == want


def test_diff_adds_replaces_deletes_and_is_empty_when_converged() -> None:
    want = neighbours.Wanted(
        arp={"192.0.2.1": "fa:16:3e:00:00:01", "192.0.2.2": "fa:16:3e:00:00:02"},
        macs=frozenset({"fa:16:3e:00:00:01", "fa:16:3e:00:00:02"}),
    )
    change = neighbours.diff(
        want,
        {"192.0.2.2": "fa:16:3e:00:00:09", "192.0.2.7": "fa:16:3e:00:00:07"},
        {"fa:16:3e:00:00:01", "fa:16:3e:00:00:07"},
    )
    assert dict(change.set_arp) == {
        "192.0.2.1": "fa:16:3e:00:00:01",
        "192.0.2.2": "fa:16:3e:00:00:02",
    }
    assert change.delete_arp == ("192.0.2.7",)
    assert change.add_macs == ("fa:16:3e:00:00:02",)
    assert change.delete_macs == ("fa:16:3e:00:00:07",)
    assert not neighbours.diff(want, dict(want.arp), set(want.macs))


def test_bridge_mac_is_stable_local_unicast_and_per_host() -> None:
    mac = neighbours.bridge_mac(NET.id, LOCAL)
    assert mac == neighbours.bridge_mac(NET.id, LOCAL)
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01  # locally administered, unicast
    assert mac != neighbours.bridge_mac(NET.id, "198.18.0.2")

"""A small fixed topology for the explain unit tests: two hosts, one VXLAN network."""

from __future__ import annotations

from typing import Any

from netagent.explain import snapshot
from netagent.model.agent import Agent
from netagent.model.network import Network
from netagent.model.port import Port
from netagent.model.secgroup import SecurityGroup
from netagent.model.state import DesiredState

NET = "11111111-1111-4111-8111-111111111111"
WEB = "22222222-2222-4222-8222-222222222222"
SSH = "33333333-3333-4333-8333-333333333333"
ADM = "44444444-4444-4444-8444-444444444444"
VM1 = "a1000000-0000-4000-8000-000000000001"
VM2 = "b2000000-0000-4000-8000-000000000002"
VM3 = "c3000000-0000-4000-8000-000000000003"
VM4 = "d4000000-0000-4000-8000-000000000004"
R_EGRESS = "e0000000-0000-4000-8000-00000000000e"
R_SSH = "e0000000-0000-4000-8000-000000000022"
R_WEB = "e0000000-0000-4000-8000-000000000050"
R_ICMP = "e0000000-0000-4000-8000-000000000001"
R_ANY = "e0000000-0000-4000-8000-0000000000a0"


def state() -> DesiredState:
    groups = [
        SecurityGroup.from_api(
            {
                "id": WEB,
                "security_group_rules": [
                    {"id": R_EGRESS, "direction": "egress", "ethertype": "IPv4"},
                    {
                        "id": R_WEB,
                        "direction": "ingress",
                        "ethertype": "IPv4",
                        "protocol": "tcp",
                        "port_range_min": 80,
                        "port_range_max": 90,
                        "remote_ip_prefix": "192.0.2.0/28",
                    },
                    {
                        "id": R_ICMP,
                        "direction": "ingress",
                        "ethertype": "IPv4",
                        "protocol": "icmp",
                        "port_range_min": 8,
                        "remote_group_id": SSH,
                    },
                ],
            }
        ),
        SecurityGroup.from_api(
            {
                "id": SSH,
                "security_group_rules": [
                    {"id": R_EGRESS.replace("e0", "f0", 1), "direction": "egress"},
                    {
                        "id": R_SSH,
                        "direction": "ingress",
                        "protocol": "tcp",
                        "port_range_min": 22,
                        "port_range_max": 22,
                        "remote_group_id": SSH,
                    },
                ],
            }
        ),
        SecurityGroup.from_api(
            {
                "id": ADM,
                "stateful": False,
                "security_group_rules": [
                    {"id": R_ANY, "direction": "ingress", "protocol": 0},
                ],
            }
        ),
    ]
    ports = [
        _port(VM1, "host-a", "fa:16:3e:00:00:01", "192.0.2.10", [SSH], pairs=["192.0.2.64/28"]),
        _port(VM2, "host-b", "fa:16:3e:00:00:02", "192.0.2.20", [WEB]),
        _port(VM3, "host-a", "fa:16:3e:00:00:03", "192.0.2.30", [WEB, SSH]),
        _port(VM4, "host-a", "fa:16:3e:00:00:04", "192.0.2.40", [ADM]),
    ]
    network = Network.from_api(
        {
            "id": NET,
            "provider:network_type": "vxlan",
            "provider:segmentation_id": 1001,
            "mtu": 1450,
        }
    )
    agents = [
        Agent.from_api(
            {"host": h, "agent_type": "Netagent agent", "configurations": {"tunneling_ip": ip}}
        )
        for h, ip in (("host-a", "198.18.0.1"), ("host-b", "198.18.0.2"))
    ]
    return DesiredState.build(
        networks=[network], ports=ports, security_groups=groups, agents=agents
    )


def _port(
    pid: str,
    host: str,
    mac: str,
    ip: str,
    groups: list[str],
    pairs: list[str] = (),  # type: ignore[assignment]
) -> Port:
    return Port.from_api(
        {
            "id": pid,
            "network_id": NET,
            "mac_address": mac,
            "fixed_ips": [{"subnet_id": NET, "ip_address": ip}],
            "binding:host_id": host,
            "security_groups": groups,
            "allowed_address_pairs": [{"ip_address": p} for p in pairs],
        }
    )


def document(host: str = "host-a") -> dict[str, Any]:
    st = state()
    planned = [p.id for p in st.ports.values() if p.host == host]
    peers = st.tunnel_peers(NET, host)
    return snapshot.document(host, [(NET, "vxlan", 1001, peers)], st, planned)


def snap(host: str = "host-a", firewall: dict[str, Any] | None = None) -> snapshot.Snapshot:
    fw = {"backend": "nft", "mark": 0x1000000, "excluded": {}, "bad_groups": {}}
    return snapshot.parse(document(host), fw if firewall is None else firewall)

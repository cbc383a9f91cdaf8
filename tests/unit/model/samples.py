"""Valid Neutron-shaped payloads, and helpers to derive invalid ones from them."""

from __future__ import annotations

import copy
import re
from typing import Any

NET = "5bf5b5fe-d6ab-4868-bac7-a0dea247a672"
EXT_NET = "f29dfae6-9fb2-45a2-8f4c-c3b83e6d0e85"
SUBNET4 = "aa925d73-99b3-4226-90c5-334e1ed70a7d"
SUBNET6 = "07432f0d-e1b7-4ff4-b1f4-a7d765545f09"
EXT_SUBNET = "9e9497ee-d3c4-47b8-87c6-85d20ae0e11c"
PORT = "3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11"
PORT2 = "d7656e5b-9bea-426a-92bd-134fee0c1130"
GW_PORT = "27647a41-9880-4a2b-888e-50aee7034083"
IF_PORT = "0b30f0c5-1ae7-48e6-a5d4-462fe62444c3"
SG = "75891e18-af2c-4c03-acf1-34e4b696efb6"
SG2 = "5e0f3b1d-0c4e-4b57-8f4d-2d9b0e6c7a10"
AG = "e3611a60-87ab-4637-8c45-4566f1e13874"
RULE = "057dcc03-1c92-4823-afa6-ba1c4e16ff3d"
ROUTER = "fb2380b9-fc60-48fb-8d70-b0ab051bd376"
FIP = "ddb03b93-3815-49db-8069-def966e1b279"
VM = "1830c443-4b09-4baa-84d4-ba16153646ef"

DELETE = object()


def network(**extra: Any) -> dict[str, Any]:
    base = {
        "id": NET,
        "name": "tenant",
        "admin_state_up": True,
        "provider:network_type": "vxlan",
        "provider:segmentation_id": 1001,
        "provider:physical_network": None,
        "mtu": 1450,
    }
    return {**base, **extra}


def subnet(**extra: Any) -> dict[str, Any]:
    base = {
        "id": SUBNET4,
        "network_id": NET,
        "ip_version": 4,
        "cidr": "192.0.2.0/24",
        "gateway_ip": "192.0.2.1",
        "enable_dhcp": True,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
    }
    return {**base, **extra}


def subnet6(**extra: Any) -> dict[str, Any]:
    base = {
        "id": SUBNET6,
        "network_id": NET,
        "ip_version": 6,
        "cidr": "fd00:1::/64",
        "gateway_ip": "fd00:1::1",
        "ipv6_ra_mode": "slaac",
        "ipv6_address_mode": "slaac",
    }
    return {**base, **extra}


def port(**extra: Any) -> dict[str, Any]:
    base = {
        "id": PORT,
        "name": "vm-a",
        "network_id": NET,
        "mac_address": "fa:16:3e:12:34:56",
        "admin_state_up": True,
        "status": "DOWN",
        "fixed_ips": [
            {"subnet_id": SUBNET4, "ip_address": "192.0.2.10"},
            {"subnet_id": SUBNET6, "ip_address": "fd00:1::10"},
        ],
        "binding:host_id": "host-a",
        "binding:vif_type": "tap",
        "device_owner": "compute:nova",
        "device_id": VM,
        "port_security_enabled": True,
        "security_groups": [SG],
        "allowed_address_pairs": [
            {"ip_address": "192.0.2.200/32", "mac_address": "fa:16:3e:12:34:56"}
        ],
    }
    return {**base, **extra}


def device_details(**extra: Any) -> dict[str, Any]:
    base = {
        "device": PORT,
        "port_id": PORT,
        "network_id": NET,
        "mac_address": "fa:16:3e:12:34:56",
        "admin_state_up": True,
        "network_type": "vlan",
        "segmentation_id": 101,
        "physical_network": "physnet1",
        "mtu": 1500,
        "fixed_ips": [{"subnet_id": SUBNET4, "ip_address": "192.0.2.10"}],
        "device_owner": "compute:nova",
        "allowed_address_pairs": [
            {"ip_address": "192.0.2.200/32", "mac_address": "fa:16:3e:12:34:56"}
        ],
        "port_security_enabled": True,
        "qos_policy_id": None,
        "profile": {},
        "propagate_uplink_status": False,
    }
    return {**base, **extra}


def rule(**extra: Any) -> dict[str, Any]:
    base = {
        "id": RULE,
        "security_group_id": SG,
        "direction": "ingress",
        "ethertype": "IPv4",
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "remote_ip_prefix": "198.51.100.0/24",
        "remote_group_id": None,
        "remote_address_group_id": None,
        "normalized_cidr": "198.51.100.0/24",
        "description": "",
    }
    return {**base, **extra}


def rpc_rule(**extra: Any) -> dict[str, Any]:
    base = {
        "direction": "ingress",
        "ethertype": "IPv4",
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "source_ip_prefix": "198.51.100.0/24",
        "stateful": True,
    }
    return {**base, **extra}


def security_group(**extra: Any) -> dict[str, Any]:
    base = {
        "id": SG,
        "name": "web",
        "stateful": True,
        "security_group_rules": [
            rule(),
            {"id": None, "direction": "ingress", "ethertype": "IPv4", "remote_group_id": SG},
            {
                "direction": "ingress",
                "ethertype": "IPv6",
                "protocol": "icmp",
                "port_range_min": 128,
            },
            {"direction": "egress", "ethertype": "IPv6", "remote_address_group_id": AG},
        ],
    }
    return {**base, **extra}


def address_group(**extra: Any) -> dict[str, Any]:
    base = {
        "id": AG,
        "name": "ops",
        "addresses": ["198.51.100.0/25", "fd00:9::/64", "198.51.100.200"],
    }
    return {**base, **extra}


def floatingip(**extra: Any) -> dict[str, Any]:
    base = {
        "id": FIP,
        "floating_ip_address": "203.0.113.20",
        "floating_network_id": EXT_NET,
        "fixed_ip_address": "192.0.2.10",
        "port_id": PORT,
        "router_id": ROUTER,
        "status": "DOWN",
    }
    return {**base, **extra}


def sync_router(**extra: Any) -> dict[str, Any]:
    """A ``sync_routers`` router dict as in neutron-wire.md section 6.4."""
    base = {
        "id": ROUTER,
        "name": "r1",
        "admin_state_up": True,
        "status": "ACTIVE",
        "enable_snat": True,
        "external_gateway_info": {
            "network_id": EXT_NET,
            "enable_snat": True,
            "external_fixed_ips": [{"subnet_id": EXT_SUBNET, "ip_address": "203.0.113.5"}],
        },
        "gw_port_id": GW_PORT,
        "gw_port": {
            "id": GW_PORT,
            "network_id": EXT_NET,
            "mac_address": "fa:16:3e:aa:bb:cc",
            "device_owner": "network:router_gateway",
            "device_id": ROUTER,
            "fixed_ips": [{"subnet_id": EXT_SUBNET, "ip_address": "203.0.113.5", "prefixlen": 24}],
            "subnets": [
                {
                    "id": EXT_SUBNET,
                    "cidr": "203.0.113.0/24",
                    "gateway_ip": "203.0.113.1",
                    "ipv6_ra_mode": None,
                }
            ],
            "extra_subnets": [],
            "mtu": 1500,
            "binding:host_id": "net1",
            "status": "DOWN",
            "port_security_enabled": False,
            "security_groups": [],
            "project_id": "",
        },
        "routes": [{"destination": "198.18.0.0/16", "nexthop": "192.0.2.254"}],
        "_interfaces": [
            {
                "id": IF_PORT,
                "network_id": NET,
                "mac_address": "fa:16:3e:01:02:03",
                "device_owner": "network:router_interface",
                "device_id": ROUTER,
                "admin_state_up": True,
                "fixed_ips": [{"subnet_id": SUBNET4, "ip_address": "192.0.2.1", "prefixlen": 24}],
                "subnets": [{"id": SUBNET4, "cidr": "192.0.2.0/24", "gateway_ip": "192.0.2.1"}],
                "mtu": 1450,
                "port_security_enabled": False,
                "security_groups": [],
            }
        ],
        "_floatingips": [floatingip()],
        "distributed": False,
        "ha": False,
        "ha_vr_id": 0,
        "gw_port_host": "net1",
    }
    return {**base, **extra}


def api_router(**extra: Any) -> dict[str, Any]:
    base = {
        "id": ROUTER,
        "name": "r1",
        "admin_state_up": True,
        "external_gateway_info": {"network_id": EXT_NET, "enable_snat": False},
        "routes": [{"destination": "198.51.100.0/24", "nexthop": "192.0.2.254"}],
    }
    return {**base, **extra}


def agent(**extra: Any) -> dict[str, Any]:
    base = {
        "host": "host-a",
        "agent_type": "Netagent agent",
        "configurations": {"tunneling_ip": "198.18.0.1"},
    }
    return {**base, **extra}


def sg_info() -> dict[str, Any]:
    """A ``security_group_info_for_devices`` reply (neutron-wire.md section 5.1)."""
    device = port(
        device=PORT,
        fixed_ips=["192.0.2.10", "fd00:1::10"],
        security_group_source_groups=[SG],
        security_group_remote_address_groups=[],
        security_group_rules=[
            {
                "direction": "ingress",
                "ethertype": "IPv6",
                "protocol": "ipv6-icmp",
                "source_port_range_min": 134,
            },
            {
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "udp",
                "port_range_min": 68,
                "port_range_max": 68,
                "source_port_range_min": 67,
                "source_port_range_max": 67,
                "dest_ip_prefix": "192.0.2.10/32",
            },
        ],
    )
    return {
        "devices": {PORT: device},
        "security_groups": {
            SG: [
                {"direction": "egress", "ethertype": "IPv4", "stateful": True},
                rpc_rule(),
                {
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "remote_group_id": SG,
                    "stateful": True,
                },
            ]
        },
        "sg_member_ips": {
            SG: {"IPv4": [["192.0.2.10", None], ["192.0.2.200", "fa:16:3e:12:34:56"]]},
        },
    }


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``path`` (``a.b[1].c``; keys may contain ``:``) set
    to ``value``, or removed when ``value`` is :data:`DELETE`."""
    result = copy.deepcopy(base)
    steps: list[str | int] = [key if key else int(index) for key, index in _STEP.findall(path)]
    target: Any = result
    for step in steps[:-1]:
        target = target[step]
    if value is DELETE:
        del target[steps[-1]]
    else:
        target[steps[-1]] = value
    return result

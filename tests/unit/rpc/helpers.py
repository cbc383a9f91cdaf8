"""Builders of Neutron-shaped payloads for the RPC tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

NET = "9b8e0c1a-1111-4c57-9a57-0d5f8b5d2e11"


def port_id(n: int) -> str:
    """Distinct in the first 11 characters (the tap name), as real port ids are."""
    return f"3f1c{n:04x}-5d0b-4c57-9a57-0d5f8b5d2e{n % 256:02x}"


def details(pid: str, **extra: Any) -> dict[str, Any]:
    """A details entry of a bound vxlan port (§4.2)."""
    entry: dict[str, Any] = {
        "port_id": pid,
        "network_id": NET,
        "mac_address": f"fa:16:3e:12:34:{int(pid[-2:], 16):02x}",
        "admin_state_up": True,
        "network_type": "vxlan",
        "segmentation_id": 101,
        "physical_network": None,
        "mtu": 1450,
        "fixed_ips": [
            {
                "subnet_id": "a0c1a0c1-2222-4c57-9a57-0d5f8b5d2e11",
                "ip_address": f"192.0.2.{10 + int(pid[-2:], 16)}",
            }
        ],
        "device_owner": "compute:nova",
        "allowed_address_pairs": [],
        "port_security_enabled": True,
        "qos_policy_id": None,
        "profile": {},
        "propagate_uplink_status": False,
    }
    entry.update(extra)
    return entry


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)

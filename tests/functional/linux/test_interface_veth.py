"""The interface driver's kernel calls (netagent.neutron_plugins.veth) on a real kernel.

They run as in neutron-dhcp-agent: in a process inside a "host" namespace (namespace
``None`` is the process's own), with the ``qdhcp-`` stand-in as the peer's namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from netagent.neutron_plugins import plugging

PORT = "3f1c2a9e-7b44-4c1d-9e0a-55aa66bb77cc"
MAC = "fa:16:3e:12:34:56"


def _in_host(host: str, code: str) -> None:
    prelude = "from netagent.neutron_plugins import plugging, veth\n"
    subprocess.run(
        ["ip", "netns", "exec", host, sys.executable, "-c", prelude + code],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _links(netns: str) -> dict[str, dict[str, object]]:
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "-d", "link", "show"], check=True, capture_output=True, text=True
    ).stdout
    return {link["ifname"]: link for link in json.loads(out)}


def _ipv6_disabled(netns: str, device: str) -> str:
    path = f"/proc/sys/net/ipv6/conf/{device}/disable_ipv6"
    return subprocess.run(
        ["ip", "netns", "exec", netns, "cat", path], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_plug_set_mtu_unplug(make_netns: Callable[[str], str]) -> None:
    host, dhcp = make_netns("host"), make_netns("qdhcp")
    plan = plugging.plan(PORT, "ns-3f1c2a9e-7b", MAC, dhcp, mtu_value=1450)
    _in_host(host, f"veth.plug({plan!r})".replace("VethPlan(", "plugging.VethPlan("))

    tap = _links(host)["tap3f1c2a9e-7b"]
    ns_end = _links(dhcp)["ns-3f1c2a9e-7b"]
    assert tap["linkinfo"]["info_kind"] == ns_end["linkinfo"]["info_kind"] == "veth"  # type: ignore[index]
    assert ns_end["address"] == MAC
    assert tap["mtu"] == ns_end["mtu"] == 1450
    assert "UP" in tap["flags"] and "UP" in ns_end["flags"]  # type: ignore[operator]
    assert "ns-3f1c2a9e-7b" not in _links(host)
    assert _ipv6_disabled(host, "tap3f1c2a9e-7b") == "1"

    _in_host(host, f"veth.set_mtu('tap3f1c2a9e-7b', 'ns-3f1c2a9e-7b', {dhcp!r}, 1400)")
    assert _links(host)["tap3f1c2a9e-7b"]["mtu"] == _links(dhcp)["ns-3f1c2a9e-7b"]["mtu"] == 1400

    _in_host(host, f"veth.unplug('tap3f1c2a9e-7b', 'ns-3f1c2a9e-7b', {dhcp!r})")
    assert "tap3f1c2a9e-7b" not in _links(host)
    assert "ns-3f1c2a9e-7b" not in _links(dhcp)
    # unplugging again (the agent's destroy after a failed setup) is quiet
    _in_host(host, f"veth.unplug('tap3f1c2a9e-7b', 'ns-3f1c2a9e-7b', {dhcp!r})")


def test_leftover_host_end_is_replaced(make_netns: Callable[[str], str]) -> None:
    host, dhcp = make_netns("host"), make_netns("qdhcp")
    # a tap of the port left without its peer (e.g. an earlier half-made plug)
    subprocess.run(
        ["ip", "-n", host, "link", "add", "tap3f1c2a9e-7b", "type", "veth", "peer", "name", "x0"],
        check=True,
    )
    plan = plugging.plan(PORT, "ns-3f1c2a9e-7b", MAC, dhcp, mtu_value=1450)
    _in_host(host, f"veth.plug({plan!r})".replace("VethPlan(", "plugging.VethPlan("))
    assert "x0" not in _links(host)
    assert _links(dhcp)["ns-3f1c2a9e-7b"]["address"] == MAC


def test_missing_namespace_leaves_nothing(make_netns: Callable[[str], str]) -> None:
    host = make_netns("host")
    plan = plugging.plan(PORT, "ns-3f1c2a9e-7b", MAC, "natest-gone-0-0", mtu_value=1450)
    code = f"veth.plug({plan!r})".replace("VethPlan(", "plugging.VethPlan(")
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            host,
            sys.executable,
            "-c",
            "from netagent.neutron_plugins import plugging, veth\n" + code,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "NamespaceNotFound" in proc.stderr
    assert "tap3f1c2a9e-7b" not in _links(host)

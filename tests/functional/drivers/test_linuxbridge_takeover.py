"""The Linux bridge driver taking over a Neutron Linux bridge agent's VXLAN device in a
test namespace: the device made as that agent makes it (``vxlan-<VNI>`` with learning,
in the network's ``brq`` bridge, with l2population entries) is renamed in place, not
recreated, and its forwarding entries converge. Read back with iproute2's JSON."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.conf import agent as agent_conf
from netagent.conf import linuxbridge as lb_conf
from netagent.drivers.base import NetworkPlan
from netagent.drivers.linuxbridge import LinuxBridgeDriver
from tests.functional.drivers.helpers import (
    LOCAL_IP,
    PEER_B,
    PEER_C,
    ZERO,
    brq,
    fdb,
    links,
    network,
    remote,
    sh,
)

PORT = 8472


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    conf = cfg.ConfigOpts()
    lb_conf.register_opts(conf)
    agent_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    fixture.config(group="linuxbridge", local_ip=LOCAL_IP, vxlan_udp_port=PORT)
    yield conf
    fixture.cleanUp()


def _neutron_vxlan(host: str, bridge: str, vni: int, port: int = PORT) -> int:
    """``vxlan-<vni>`` as LinuxBridgeManager.ensure_vxlan + l2pop leave it."""
    sh(host, "link", "add", bridge, "type", "bridge")
    sh(
        host, "link", "add", f"vxlan-{vni}", "type", "vxlan", "id", str(vni), "dev", "ul0",
        "local", LOCAL_IP, "dstport", str(port), "learning",
    )  # fmt: skip
    sh(host, "link", "set", f"vxlan-{vni}", "master", bridge, "up")
    sh(host, "link", "set", bridge, "up")
    for mac, dst in ((ZERO, PEER_B), ("fa:16:3e:00:00:0b", PEER_B), (ZERO, PEER_C)):
        subprocess.run(
            ["bridge", "-n", host, "fdb", "append", mac, "dev", f"vxlan-{vni}", "dst", str(dst)],
            check=True,
            capture_output=True,
        )
    return int(links(host)[f"vxlan-{vni}"]["ifindex"])


def test_neutron_vxlan_is_renamed_in_place(conf: cfg.ConfigOpts, host: str) -> None:
    conf.set_override("take_over_neutron_linuxbridge", True, "agent")
    net = network(vni=1001, mtu=1450)
    index = _neutron_vxlan(host, brq(net), 1001)
    driver = LinuxBridgeDriver(conf, netns=host)
    driver.initialize()
    plan = NetworkPlan(
        net,
        {"host-b": PEER_B, "host-a": ipaddress.ip_address(LOCAL_IP)},
        (remote("fa:16:3e:00:00:0b", PEER_B),),
    )
    assert not driver.ensure_networks([plan]).failed
    devs = links(host)
    assert "vxlan-1001" not in devs
    vx = devs["nvx-1001"]
    assert vx["ifindex"] == index and vx["master"] == brq(net)
    assert vx["linkinfo"]["info_data"]["learning"] is False
    # host-c is gone from the desired state: its flood entry goes, the rest stays
    assert fdb(host, "nvx-1001") == {(ZERO, str(PEER_B)), ("fa:16:3e:00:00:0b", str(PEER_B))}
    driver.begin_pass()
    assert not driver.ensure_networks([plan]).failed  # a second run is a no-op
    assert links(host)["nvx-1001"]["ifindex"] == index


def test_taken_over_fdb_is_kept_until_peers_are_known(conf: cfg.ConfigOpts, host: str) -> None:
    """With l2population the server's entries come in a cast after the first pass: a pass
    that knows no peer yet must not cut the old agent's tunnels (real-server finding)."""
    conf.set_override("take_over_neutron_linuxbridge", True, "agent")
    net = network(vni=1003, mtu=1450)
    _neutron_vxlan(host, brq(net), 1003)
    old = fdb(host, "vxlan-1003")
    driver = LinuxBridgeDriver(conf, netns=host)
    driver.initialize()
    no_peers = NetworkPlan(net, {"host-a": ipaddress.ip_address(LOCAL_IP)})
    assert not driver.ensure_networks([no_peers]).failed
    assert fdb(host, "nvx-1003") == old
    assert driver.find_drift().networks == set(), driver.find_drift()  # kept = applied
    driver.begin_pass()
    assert not driver.ensure_networks([no_peers]).failed  # still nothing known: kept
    assert fdb(host, "nvx-1003") == old
    driver.begin_pass()
    plan = NetworkPlan(
        net,
        {"host-b": PEER_B, "host-a": ipaddress.ip_address(LOCAL_IP)},
        (remote("fa:16:3e:00:00:0b", PEER_B),),
    )
    assert not driver.ensure_networks([plan]).failed
    assert fdb(host, "nvx-1003") == {(ZERO, str(PEER_B)), ("fa:16:3e:00:00:0b", str(PEER_B))}
    driver.begin_pass()
    assert not driver.ensure_networks([no_peers]).failed  # known once: converged as usual
    assert fdb(host, "nvx-1003") == set()


def test_other_port_fails_the_network_without_touching_it(conf: cfg.ConfigOpts, host: str) -> None:
    conf.set_override("take_over_neutron_linuxbridge", True, "agent")
    net = network(vni=1002)
    index = _neutron_vxlan(host, brq(net), 1002, port=4789)
    driver = LinuxBridgeDriver(conf, netns=host)
    driver.initialize()
    outcome = driver.ensure_networks([NetworkPlan(net, {})])
    assert "vxlan_udp_port" in outcome.failed[net.id]
    assert links(host)["vxlan-1002"]["ifindex"] == index


def test_without_the_option_nothing_is_taken_over(conf: cfg.ConfigOpts, host: str) -> None:
    net = network(vni=1003)
    index = _neutron_vxlan(host, brq(net), 1003)
    driver = LinuxBridgeDriver(conf, netns=host)
    driver.initialize()
    assert driver.ensure_networks([NetworkPlan(net, {})]).failed  # VNI in use: refused
    assert links(host)["vxlan-1003"]["ifindex"] == index

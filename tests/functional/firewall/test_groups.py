"""Remote groups, conntrack cut-off on rule removal, restart adoption, fail-closed."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from collections.abc import Callable

from netagent.drivers.base import PortPlan
from netagent.drivers.iptables_firewall import IptablesFirewallDriver
from tests.functional.firewall.conftest import (
    EGRESS_ALL,
    VM,
    Listener,
    Topology,
    eventually_ping,
    ping,
    rule,
    sg_id,
    tcp_ok,
)


def test_remote_group_follows_membership(topo: Topology, listen: Callable[..., Listener]) -> None:
    a, b, c = topo.add_vm("5"), topo.add_vm("6"), topo.add_vm("7")
    web = sg_id()
    topo.group(*EGRESS_ALL, rule("ingress", "IPv4", 6, (22, 22), remote_group=web), gid=web)
    other = topo.group(*EGRESS_ALL)
    topo.port(a, (web,))
    topo.port(b, (web,))
    topo.port(c, (other,))
    assert not topo.apply()[1]
    listen(b, 22)
    assert tcp_ok(a, b.ip4, 22)
    assert not tcp_ok(c, b.ip4, 22)
    # c joins the group: only the ipset changes
    topo.port(c, (other, web))
    assert not topo.apply()[1]
    assert tcp_ok(c, b.ip4, 22)
    # a leaves it
    topo.port(a, (other,))
    assert not topo.apply()[1]
    assert not tcp_ok(a, b.ip4, 22)
    assert tcp_ok(c, b.ip4, 22)


def _flow(src: VM, dst: str, port: int, udp: bool, seconds: float) -> subprocess.Popen[str]:
    """A long-lived flow: one 'ok'/'lost' line per echo attempt, every 0.2 s."""
    kind = "socket.SOCK_DGRAM" if udp else "socket.SOCK_STREAM"
    code = (
        "import socket,time,sys\n"
        f"s=socket.socket(socket.AF_INET,{kind}); s.settimeout(0.5)\n"
        f"s.connect(({dst!r},{port}))\n"
        f"end=time.time()+{seconds}\n"
        "while time.time()<end:\n"
        "    try:\n"
        "        s.send(b'x'); s.recv(16); print('ok',flush=True)\n"
        "    except OSError: print('lost',flush=True)\n"
        "    time.sleep(0.2)\n"
    )
    return subprocess.Popen(
        ["ip", "netns", "exec", src.ns, "python3", "-c", code], stdout=subprocess.PIPE, text=True
    )


def _wait_ok(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for _ in range(30):
        if proc.stdout.readline().strip() == "ok":
            return
    raise AssertionError("flow never worked")


def test_removing_a_rule_cuts_established_flows(
    topo: Topology, listen: Callable[..., Listener]
) -> None:
    a, b = topo.add_vm("8"), topo.add_vm("9")
    gid = sg_id()
    tcp_rule = rule("ingress", "IPv4", 6, (2222, 2222))
    udp_rule = rule("ingress", "IPv4", 17, (5353, 5353))
    topo.group(*EGRESS_ALL, tcp_rule, udp_rule, gid=gid)
    topo.port(a, (gid,))
    topo.port(b, (gid,))
    assert not topo.apply()[1]
    listen(b, 2222)
    listen(b, 5353, udp=True)
    flows = [_flow(a, b.ip4, 2222, False, 12), _flow(a, b.ip4, 5353, True, 12)]
    for proc in flows:
        _wait_ok(proc)
    topo.group(*EGRESS_ALL, gid=gid)  # both rules removed
    assert not topo.apply()[1]
    time.sleep(3)
    for proc in flows:
        assert proc.stdout is not None
        # drain what was printed before the cut, then the flow must be dead
        proc.kill()
        lines = proc.stdout.read().split()
        proc.wait(timeout=5)
        tail = lines[-3:]
        assert tail and all(x == "lost" for x in tail), lines


def test_unknown_tap_forwards_nothing_and_port_security_off_is_open(
    topo: Topology, listen: Callable[..., Listener]
) -> None:
    a, b = topo.add_vm("a"), topo.add_vm("b")
    stranger = topo.add_vm("c")  # enslaved, no filter
    weird = topo.add_vm("d")
    allow_all = topo.group(*EGRESS_ALL, rule("ingress", "IPv4"), rule("ingress", "IPv6"))
    topo.port(a, (allow_all,))
    topo.port(b, security=False)
    topo.port(weird, (allow_all,))
    assert not topo.apply(a, b)[1]
    assert eventually_ping(a, b.ip4)
    assert not ping(stranger, a.ip4)
    assert not ping(stranger, b.ip4)
    assert not ping(a, stranger.ip4)
    # port security off: even a foreign source address passes
    subprocess.run(
        ["ip", "netns", "exec", b.ns, "ip", "addr", "add", "198.51.100.222/24", "dev", "eth0"],
        check=True,
    )
    assert eventually_ping(b, a.ip4)
    proc = subprocess.run(
        ["ip", "netns", "exec", b.ns, "ping", "-c", "1", "-W", "1", "-I", "198.51.100.222", a.ip4],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0
    # the stranger gets a filter: now it works
    topo.port(stranger, (allow_all,))
    assert not topo.apply(stranger)[1]
    assert eventually_ping(stranger, a.ip4)


def test_restart_adopts_filters_without_rewriting_iptables(
    topo: Topology, listen: Callable[..., Listener]
) -> None:
    a, b = topo.add_vm("e"), topo.add_vm("f")
    gid = topo.group(*EGRESS_ALL, rule("ingress", "IPv4", 1), rule("ingress", "IPv4", 6, (22, 22)))
    topo.port(a, (gid,))
    topo.port(b, (gid,))
    assert not topo.apply()[1]
    listen(b, 22)
    listen(b, 23)
    assert eventually_ping(a, b.ip4)
    # a new agent process: the old filter keeps working until the new one applies
    fresh = IptablesFirewallDriver(topo.conf, netns=topo.host)
    fresh.initialize()
    assert ping(a, b.ip4)
    assert not tcp_ok(a, b.ip4, 23)
    plans = [PortPlan(topo.ports[v.port_id], topo.network) for v in (a, b)]
    out = fresh.apply_ports(plans, topo.state())
    assert not out.failed
    assert not any(text.startswith("*filter") for text in fresh.last_inputs), fresh.last_inputs
    assert ping(a, b.ip4)
    assert tcp_ok(a, b.ip4, 22)
    assert not tcp_ok(a, b.ip4, 23)
    topo.driver = fresh
    # and a removed port's tap forwards nothing any more
    assert not fresh.remove_ports([a.port_id]).failed
    assert not ping(a, b.ip4)
    _ = dataclasses

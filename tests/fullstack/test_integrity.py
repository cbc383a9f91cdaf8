"""Someone else changes netagent's filters in a host namespace: the running agent finds it
and rewrites them within seconds, with a warning naming the chain and a counter in its
status (doc/firewall.md, "Integrity check").

The attack is real: raw IPv4 frames built in a VM namespace, with a source address the
port does not own (anti-spoofing, ebtables) or to a port its security group does not
open (iptables), counted on arrival in the neighbour VM's namespace. The test does not
assert that the tampering let them through (a repair may come first); it asserts that
within 10 s of the tampering the chain is back and they stop arriving, while a
legitimate frame from the same VM still does.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from netagent.common import names
from netagent.drivers.iptables_firewall import antispoof
from tests.fullstack import harness
from tests.fullstack.harness import Fabric, Host, Vm, wait_for

SG = str(uuid.uuid4())
SPOOFED_IP = "192.0.2.200"
REPAIR_WITHIN = 10.0
CLOSED_UDP_PORT = 5555
WARNING = "changed behind netagent's back"

_SNIFF = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0)); s.settimeout(0.1)
print("ready", flush=True)
end = time.time() + float(sys.argv[1]); seen = set()
while time.time() < end:
    try:
        d, a = s.recvfrom(4096)
    except socket.timeout:
        continue
    if a[2] == socket.PACKET_OUTGOING:
        continue
    i = d.find(b"NAPROBE-")
    if i >= 0:
        seen.add(d[i + 8 : i + 16].decode(errors="replace"))
print(" ".join(sorted(seen)), flush=True)
"""

_SEND = """
import socket, struct, sys
src, dst, smac, dmac, proto, tag = sys.argv[1:7]
def csum(b):
    b += b"\\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
payload = b"NAPROBE-" + tag.encode()
if proto == "icmp":
    l4 = struct.pack("!BBHHH", 8, 0, 0, 0x4E41, 1) + payload
    l4 = l4[:2] + struct.pack("!H", csum(l4)) + l4[4:]
    number = 1
else:
    l4 = struct.pack("!HHHH", 40000, int(proto), 8 + len(payload), 0) + payload
    number = 17
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, number, 0,
                 socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
eth = bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", "")) + b"\\x08\\x00"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(3):
    s.send(eth + ip + l4)
"""


def _rules() -> list[dict[str, Any]]:
    return [
        {"id": str(uuid.uuid4()), "direction": "egress", "ethertype": "IPv4"},
        {"id": str(uuid.uuid4()), "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"},
    ]


class GroupFabric(Fabric):
    """Every port in one group: all egress, ICMP in (UDP in stays closed)."""

    def state(self) -> dict[str, Any]:
        doc = super().state()
        doc["security_groups"] = [{"id": SG, "name": "icmp", "security_group_rules": _rules()}]
        for port in doc["ports"]:
            port["security_groups"] = [SG]
        return doc


def _probe(src: Vm, dst: Vm, frames: list[tuple[str, str, str]]) -> set[str]:
    """Send ``(source ip, proto, tag)`` frames from ``src`` to ``dst``; tags that arrived."""
    sniffer = subprocess.Popen(
        ["ip", "netns", "exec", dst.netns, "python3", "-c", _SNIFF, "1.0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert sniffer.stdout is not None
        assert sniffer.stdout.readline().strip() == "ready"
        for source, proto, tag in frames:
            harness.run(
                "ip", "netns", "exec", src.netns, "python3", "-c", _SEND,
                source, dst.address, src.mac, dst.mac, proto, tag,
            )  # fmt: skip
        out, _ = sniffer.communicate(timeout=10)
    finally:
        if sniffer.poll() is None:
            sniffer.kill()
            sniffer.communicate(timeout=5)
    return set(out.split())


def _status(host: Host) -> dict[str, Any]:
    out = harness.run(
        str(harness.BIN / "netagent-status"), "--state-path", str(host.state_path), "--json"
    ).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def _hexec(host: Host, *argv: str) -> str:
    return harness.run("ip", "netns", "exec", host.netns, *argv).stdout


def _eb_save(host: Host) -> str:
    return _hexec(host, "ebtables-nft-save", "-t", "nat")


def _setup(fabric: GroupFabric, backend: str) -> tuple[Host, Vm, Vm]:
    host = fabric.add_host("host-a", "198.18.0.1")
    net = fabric.add_network(1101)
    vm1 = fabric.add_vm("vm1", host, net, "192.0.2.10/24")
    vm2 = fabric.add_vm("vm2", host, net, "192.0.2.11/24")
    fabric.write_state()
    extra = f"[agent]\nfirewall_driver = iptables\n[iptables]\nbackend = {backend}\n"
    host.write_config(fabric.state_file, extra)
    host.start_agent()
    fabric.wait_wired(vm1, vm2)
    wait_for("agent converged", lambda: host.status().returncode == 0, timeout=30)
    fabric.wait_ping(vm1, vm2)
    return host, vm1, vm2


@pytest.fixture
def grouped(fabric: Fabric) -> GroupFabric:
    fabric.__class__ = GroupFabric
    assert isinstance(fabric, GroupFabric)
    return fabric


def _port_chain(vm: Vm) -> str:
    return "na-s-" + vm.port_id[:11]


def _prerouting(save: str) -> list[str]:
    return [line for line in save.splitlines() if line.startswith("-A PREROUTING ")]


# tamper name -> (commands run in the host namespace, chain named in the warning,
# "the chain is back" predicate on the host). {port} is vm1's spoof chain.
EbCase = tuple[list[list[str]], str, Callable[[Host, Vm], bool]]
EB_CASES: dict[str, EbCase] = {
    "flush-na-PREROUTING": (
        [["ebtables-nft", "-t", "nat", "-F", "na-PREROUTING"]],
        "na-PREROUTING",
        lambda h, vm: "-A na-PREROUTING -i tap+ -j DROP" in _eb_save(h),
    ),
    "delete-hook-jump": (
        [["ebtables-nft", "-t", "nat", "-D", "PREROUTING", "-j", "na-PREROUTING"]],
        "na-PREROUTING",
        lambda h, vm: _prerouting(_eb_save(h))[:1] == ["-A PREROUTING -j na-PREROUTING"],
    ),
    "rule-before-hook-jump": (
        [["ebtables-nft", "-t", "nat", "-I", "PREROUTING", "1", "-j", "ACCEPT"]],
        "na-PREROUTING",
        lambda h, vm: _prerouting(_eb_save(h))[:1] == ["-A PREROUTING -j na-PREROUTING"],
    ),
    "port-chain-accept": (
        [
            ["ebtables-nft", "-t", "nat", "-F", "{port}"],
            ["ebtables-nft", "-t", "nat", "-A", "{port}", "-j", "ACCEPT"],
        ],
        "{port}",
        lambda h, vm: f"-A {_port_chain(vm)} -j na-eb-tail" in _eb_save(h),
    ),
}


def _wait_repaired(
    what: str,
    chain_back: Callable[[], bool],
    blocked: Callable[[], bool],
    started: float,
    within: float = REPAIR_WITHIN,
) -> float:
    """Poll until the chain is back and the attack is blocked; seconds since tampering."""
    while True:
        if chain_back() and blocked():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not repaired within {within:.0f} s")
        time.sleep(0.2)


def _log_has(host: Host, *parts: str) -> bool:
    text = host.log_file.read_text(errors="replace")
    return any(all(p in line for p in parts) for line in text.splitlines())


@pytest.mark.parametrize("case", sorted(EB_CASES))
def test_antispoofing_tampered_is_repaired(grouped: GroupFabric, case: str) -> None:
    host, vm1, vm2 = _setup(grouped, "nft")
    commands, chain, back = EB_CASES[case]
    chain = chain.format(port=_port_chain(vm1))
    frames = [(SPOOFED_IP, "icmp", "spoofed0"), (vm1.address, "icmp", "genuine0")]
    # the attack fails before the tampering, and the genuine frame arrives
    assert _probe(vm1, vm2, frames) == {"genuine0"}
    before = _status(host)["counters"]["integrity_repairs"]
    started = time.monotonic()
    for argv in commands:
        _hexec(host, *(a.format(port=_port_chain(vm1)) for a in argv))

    def blocked() -> bool:
        return _probe(vm1, vm2, frames) == {"genuine0"}

    took = _wait_repaired(case, lambda: back(host, vm1), blocked, started)
    print(f"{case}: repaired and blocked {took:.1f} s after tampering")
    assert _log_has(host, "WARNING", f"ebtables chain {chain} ", WARNING), host.log_tail()
    wait_for(
        "repair counted in status",
        lambda: _status(host)["counters"]["integrity_repairs"] > before,
        timeout=5,
    )
    assert host.agent_alive()


@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_security_group_chain_flushed_is_repaired(grouped: GroupFabric, backend: str) -> None:
    host, vm1, vm2 = _setup(grouped, backend)
    bucket = "na-n-" + vm2.tap[3]  # vm2's ingress bucket: its rule sends to its group
    frames = [(vm1.address, str(CLOSED_UDP_PORT), "closed00"), (vm1.address, "icmp", "genuine0")]
    assert _probe(vm1, vm2, frames) == {"genuine0"}
    tool = f"iptables-{backend}"
    started = time.monotonic()
    _hexec(host, tool, "-F", bucket)

    def back() -> bool:
        return f"-A {bucket} " in _hexec(host, f"{tool}-save", "-t", "filter")

    took = _wait_repaired(
        f"{backend} {bucket}", back, lambda: _probe(vm1, vm2, frames) == {"genuine0"}, started
    )
    print(f"iptables-{backend} flush {bucket}: repaired and blocked {took:.1f} s after")
    assert _log_has(host, "WARNING", f"chain {bucket} ", WARNING), host.log_tail()
    assert _status(host)["counters"]["integrity_repairs"] >= 1


def _ping6(src: Vm, dst: Vm) -> bool:
    """One ICMPv6 echo from ``src`` to ``dst``'s link-local address (answered?)."""
    target = str(antispoof.link_local(dst.mac).network_address)
    proc = harness.run(
        "ip", "netns", "exec", src.netns, "ping", "-6", "-n", "-q", "-c", "1", "-W", "1",
        f"{target}%eth0", check=False, timeout=10,
    )  # fmt: skip
    return proc.returncode == 0


# tamper name -> (argv in the host namespace, chain named in the warning); the attack is
# a UDP datagram to a port the group keeps closed, or (IPv6) an echo the group has no
# rule for, both reaching vm2 while the hook or chain is damaged
IPT_CASES: dict[str, tuple[list[str], str]] = {
    "v4-hook-deleted": (["iptables-nft", "-D", "FORWARD", "1"], "na-FORWARD"),
    "v4-accept-on-top": (["iptables-nft", "-I", "na-FORWARD", "1", "-j", "ACCEPT"], "na-FORWARD"),
    "v4-rule-before-hook": (["iptables-nft", "-I", "FORWARD", "1", "-j", "ACCEPT"], "na-FORWARD"),
    "v6-hook-deleted": (["ip6tables-nft", "-D", "FORWARD", "1"], "na-FORWARD"),
    "v6-accept-on-top": (["ip6tables-nft", "-I", "na-FORWARD", "1", "-j", "ACCEPT"], "na-FORWARD"),
}


@pytest.mark.parametrize("case", sorted(IPT_CASES))
def test_hooks_and_hook_chains_tampered_are_repaired(grouped: GroupFabric, case: str) -> None:
    host, vm1, vm2 = _setup(grouped, "nft")
    argv, chain = IPT_CASES[case]
    v6 = case.startswith("v6")
    frames = [(vm1.address, str(CLOSED_UDP_PORT), "closed00"), (vm1.address, "icmp", "genuine0")]
    if v6:
        assert not _ping6(vm1, vm2), "the group admits no IPv6 echo"
    else:
        assert _probe(vm1, vm2, frames) == {"genuine0"}
    save = "ip6tables-nft-save" if v6 else "iptables-nft-save"

    def hook_and_chain() -> list[str]:
        lines = _hexec(host, save, "-t", "filter").splitlines()
        forward = [line for line in lines if line.startswith("-A FORWARD ")]
        return forward[:1] + [line for line in lines if line.startswith("-A na-FORWARD ")]

    applied = hook_and_chain()
    assert applied[0].endswith(" -j na-FORWARD")
    before = _status(host)["counters"]["integrity_repairs"]
    started = time.monotonic()
    _hexec(host, *argv)

    def back() -> bool:
        return hook_and_chain() == applied

    def blocked() -> bool:
        if v6:
            return not _ping6(vm1, vm2)
        return _probe(vm1, vm2, frames) == {"genuine0"}

    took = _wait_repaired(case, back, blocked, started, within=5.0)
    print(f"{case}: repaired and blocked {took:.1f} s after tampering")
    family = "IPv6" if v6 else "IPv4"
    assert _log_has(host, "WARNING", family, f"chain {chain} ", WARNING), host.log_tail()
    assert _status(host)["counters"]["integrity_repairs"] > before


SET_RULES_SG = str(uuid.uuid4())
OTHER_SG = str(uuid.uuid4())


class MemberFabric(Fabric):
    """vm1 and vm2 in a group admitting ICMP from its members only; vm3 in another."""

    def state(self) -> dict[str, Any]:
        doc = super().state()
        rules = [
            {"id": str(uuid.uuid4()), "direction": "egress", "ethertype": "IPv4"},
            {
                "id": str(uuid.uuid4()),
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "icmp",
                "remote_group_id": SET_RULES_SG,
            },
        ]
        other = [{"id": str(uuid.uuid4()), "direction": "egress", "ethertype": "IPv4"}]
        doc["security_groups"] = [
            {"id": SET_RULES_SG, "name": "members", "security_group_rules": rules},
            {"id": OTHER_SG, "name": "other", "security_group_rules": other},
        ]
        for port in doc["ports"]:
            vm = next(v for v in self.vms.values() if v.port_id == port["id"])
            port["security_groups"] = [OTHER_SG if vm.name == "vm3" else SET_RULES_SG]
        return doc


# tamper -> commands ({set} is the group's IPv4 set, {vm3} vm3's address)
SET_CASES: dict[str, list[list[str]]] = {
    "member-added": [["ipset", "add", "{set}", "{vm3}"]],
    "flushed": [["ipset", "flush", "{set}"]],
    "swapped-out-and-destroyed": [
        ["ipset", "create", "x-{set}", "hash:net", "family", "inet"],
        ["ipset", "swap", "x-{set}", "{set}"],
        ["ipset", "destroy", "x-{set}"],
    ],
}


@pytest.mark.parametrize("case", sorted(SET_CASES))
def test_ipset_tampered_is_repaired(fabric: Fabric, case: str) -> None:
    fabric.__class__ = MemberFabric
    host = fabric.add_host("host-a", "198.18.0.1")
    net = fabric.add_network(1102)
    vm1 = fabric.add_vm("vm1", host, net, "192.0.2.10/24")
    vm2 = fabric.add_vm("vm2", host, net, "192.0.2.11/24")
    vm3 = fabric.add_vm("vm3", host, net, "192.0.2.12/24")
    fabric.write_state()
    host.write_config(fabric.state_file, "[agent]\nfirewall_driver = iptables\n")
    host.start_agent()
    fabric.wait_wired(vm1, vm2, vm3)
    wait_for("agent converged", lambda: host.status().returncode == 0, timeout=30)
    fabric.wait_ping(vm1, vm2)
    set_name = names.ipset_name(4, SET_RULES_SG)
    member = [(vm1.address, "icmp", "member00")]
    stranger = [(vm3.address, "icmp", "stranger")]
    assert _probe(vm1, vm2, member) == {"member00"}
    assert _probe(vm3, vm2, stranger) == set()
    before = _status(host)["counters"]["integrity_repairs"]

    def members() -> list[str]:
        lines = _hexec(host, "ipset", "save", set_name).splitlines()
        return sorted(line for line in lines if line.startswith("add "))

    applied = members()
    assert applied == sorted(f"add {set_name} {vm.address}" for vm in (vm1, vm2))
    started = time.monotonic()
    for argv in SET_CASES[case]:
        _hexec(host, *(a.format(set=set_name, vm3=vm3.address) for a in argv))

    def back() -> bool:
        return members() == applied

    def right() -> bool:
        return _probe(vm1, vm2, member) == {"member00"} and _probe(vm3, vm2, stranger) == set()

    took = _wait_repaired(case, back, right, started, within=5.0)
    print(f"ipset {case}: repaired {took:.1f} s after tampering")
    assert _log_has(host, "WARNING", f"ipset {set_name} ", WARNING), host.log_tail()
    assert _status(host)["counters"]["integrity_repairs"] > before

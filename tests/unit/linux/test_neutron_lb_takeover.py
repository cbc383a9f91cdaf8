"""Taking over a Neutron Linux bridge agent's filters and devices: the pure parts (save
parsing, restore grammar, the manager's one-restore removal against a fake kernel,
VXLAN adoption and conntrack zones). The real thing runs in
tests/interop/test_lb_takeover_interop.py."""

# ruff: noqa: E501 - the saved rules below are quoted as the tools print them

from __future__ import annotations

import pytest

from netagent.common import names
from netagent.drivers.iptables_firewall.zones import NetworkZones
from netagent.drivers.linuxbridge import takeover
from netagent.drivers.linuxbridge.kernel import Link, VxlanSpec
from netagent.drivers.linuxbridge.links import Links
from netagent.linux import ebtables as eb_mod
from netagent.linux.iptables import DROP, IptablesManager, Rule, plan
from netagent.privileged import ebtables as eb_priv
from netagent.privileged import ipset as ipset_priv
from netagent.privileged import iptables as ipt_priv
from tests.unit.linux.test_iptables_manager import FakeKernel, kernel  # noqa: F401

NET = "069eadc4-0711-4a4c-9c55-0d2c1b3c7e2f"
BRIDGE = "brq069eadc4-07"
# What Neutron 25.2.3's iptables_manager leaves in filter (abridged, same shapes)
FILTER_SAVE = """*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:neutron-filter-top - [0:0]
:neutron-linuxbri-FORWARD - [0:0]
:neutron-linuxbri-INPUT - [0:0]
:neutron-linuxbri-local - [0:0]
:neutron-linuxbri-sg-chain - [0:0]
:neutron-linuxbri-ib8858791-0 - [0:0]
-A INPUT -j neutron-linuxbri-INPUT
-A FORWARD -j neutron-filter-top
-A FORWARD -j neutron-linuxbri-FORWARD
-A neutron-filter-top -j neutron-linuxbri-local
-A neutron-linuxbri-FORWARD -m physdev --physdev-out tapb8858791-03 --physdev-is-bridged -m comment --comment "Direct traffic from the VM interface to the security group chain." -j neutron-linuxbri-sg-chain
-A neutron-linuxbri-sg-chain -m physdev --physdev-out tapb8858791-03 --physdev-is-bridged -j neutron-linuxbri-ib8858791-0
-A neutron-linuxbri-ib8858791-0 -m set --match-set NIPv471e67e49-eaec-4906-befb- src -j RETURN
COMMIT
"""
RAW_SAVE = f"""*raw
:PREROUTING ACCEPT [0:0]
:neutron-linuxbri-PREROUTING - [0:0]
-A PREROUTING -j neutron-linuxbri-PREROUTING
-A neutron-linuxbri-PREROUTING -m physdev --physdev-in {BRIDGE} -m comment --comment "Set zone for a39c5de-94" -j CT --zone 4097
-A neutron-linuxbri-PREROUTING -i {BRIDGE} -m comment --comment "Set zone for a39c5de-94" -j CT --zone 4097
COMMIT
"""
EB_SAVE = """*nat
:PREROUTING ACCEPT
:neutronARP-tapb8858791-03 DROP
:neutronMAC-tapb8858791-03 DROP
-A PREROUTING -i tapb8858791-03 -j neutronMAC-tapb8858791-03
-A PREROUTING -p ARP -i tapb8858791-03 -j neutronARP-tapb8858791-03
-A neutronARP-tapb8858791-03 -p ARP --arp-ip-src 192.0.2.10 -j ACCEPT
-A neutronMAC-tapb8858791-03 -i tapb8858791-03 --among-src fa:16:3e:b3:6e:b2 -j RETURN
"""


def test_removal_flushes_unhooks_then_deletes_and_passes_the_grammar() -> None:
    removal = plan.neutron_lb_removal(FILTER_SAVE)
    assert not removal.blocked
    assert len(removal.chains) == 6
    lines = list(removal.lines)
    assert lines[:6] == [f"-F {c}" for c in removal.chains]
    assert lines[6:9] == [
        "-D INPUT -j neutron-linuxbri-INPUT",
        "-D FORWARD -j neutron-filter-top",
        "-D FORWARD -j neutron-linuxbri-FORWARD",
    ]
    assert lines[9:] == [f"-X {c}" for c in removal.chains]
    ipt_priv.check_restore_input("filter", "*filter\n" + "\n".join(lines) + "\nCOMMIT\n")


def test_a_foreign_jump_into_the_old_chains_blocks_the_removal() -> None:
    text = FILTER_SAVE.replace(
        "-A FORWARD -j neutron-filter-top", "-A FORWARD -i eth9 -j neutron-filter-top"
    )
    removal = plan.neutron_lb_removal(text)
    assert removal.lines == () and removal.blocked == ("-A FORWARD -i eth9 -j neutron-filter-top",)
    assert plan.neutron_lb_removal("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n").chains == ()


@pytest.mark.parametrize(
    "line",
    [
        "-D FORWARD -j ACCEPT",  # someone else's rule
        "-F FORWARD",
        "-X neutron-openvswi-FORWARD",  # another Neutron agent's chain
        "-A neutron-linuxbri-FORWARD -j ACCEPT",  # never adds to the old chains
        "-D FORWARD -i eth0 -j neutron-filter-top",
        ":neutron-linuxbri-x - [0:0]",
        "-X neutron-linuxbri-a;b",
    ],
)
def test_grammar_admits_only_the_removal(line: str) -> None:
    with pytest.raises(ipt_priv.IptablesInputError):
        ipt_priv.check_restore_input("filter", f"*filter\n{line}\nCOMMIT\n")


def test_ebtables_removal_and_grammar() -> None:
    removal = eb_mod.neutron_lb_removal(EB_SAVE)
    assert removal.chains == ("neutronARP-tapb8858791-03", "neutronMAC-tapb8858791-03")
    assert removal.lines[:2] == (
        "-D PREROUTING -i tapb8858791-03 -j neutronMAC-tapb8858791-03",
        "-D PREROUTING -p ARP -i tapb8858791-03 -j neutronARP-tapb8858791-03",
    )
    eb_priv.check_restore_input("*nat\n" + "\n".join(removal.lines) + "\nCOMMIT\n")
    for bad in ("-D PREROUTING -j ACCEPT", "-X neutronARP-eth0", "-F PREROUTING"):
        with pytest.raises(eb_priv.EbtablesInputError):
            eb_priv.check_restore_input(f"*nat\n{bad}\nCOMMIT\n")
    with pytest.raises(eb_priv.EbtablesInputError):  # only nat has the old chains
        eb_priv.check_restore_input("*filter\n-X neutronARP-tapb8858791-03\nCOMMIT\n", "filter")
    odd = EB_SAVE + "-A PREROUTING --among-src fa:16:3e:00:00:01 -j neutronMAC-tapb8858791-03\n"
    assert eb_mod.neutron_lb_removal(odd).blocked


def test_ipset_names() -> None:
    with pytest.raises(ipset_priv.IpsetInputError):
        ipset_priv.destroy_neutron(None, "na4abc")  # netagent's own go another way
    with pytest.raises(ipset_priv.IpsetInputError):
        ipset_priv.destroy_neutron(None, "NIPv4x;rm")


def test_zones_of_the_old_agent() -> None:
    assert plan.neutron_lb_zones(RAW_SAVE) == {BRIDGE: 4097}
    zones = NetworkZones(IptablesManager.__new__(IptablesManager))
    zones.adopt({BRIDGE: 4097, "brq00000000-00": 5})  # 5 is outside the range: ignored
    assert zones.zone_of(NET) == 4097
    other = "169eadc4-0711-4a4c-9c55-0d2c1b3c7e2f"
    zones.adopt({names.network_bridge(other): 4097})  # taken already: probes on
    assert zones.zone_of(other) not in (4097, 5)


def test_manager_removes_the_old_chains_in_the_restore_that_writes_its_own(
    kernel: FakeKernel,  # noqa: F811
) -> None:
    for family, table, text in ((4, "filter", FILTER_SAVE), (4, "raw", RAW_SAVE)):
        chains: dict[str, list[str]] = {}
        for line in text.splitlines():
            if line.startswith(":"):
                chains[line[1:].split()[0]] = []
            elif line.startswith("-A "):
                chains[line.split()[1]].append(line)
        kernel.tables[(family, table)] = chains
    mgr = IptablesManager("ns1", verify_interval=None, take_over_neutron_lb=True)
    mgr.set_chain(4, "filter", "na-x", [Rule((), DROP)])
    mgr.set_jumps(4, "filter", "FORWARD", [Rule((), DROP)])
    assert mgr.neutron_lb_zones() == {BRIDGE: 4097}
    assert mgr.apply().ok
    (restore,) = kernel.restores  # raw untouched: nothing of netagent's declared there
    assert ":na-x" in restore and "-I FORWARD 1" in restore
    assert restore.index("-X neutron-filter-top") > restore.index("-I FORWARD 1")
    assert kernel.settled == [True]  # the sets those rules matched are destroyed next
    assert not [c for c in kernel.tables[(4, "filter")] if c.startswith("neutron")]
    assert kernel.tables[(4, "filter")]["FORWARD"] == [
        "-A FORWARD -m comment --comment na:hook -j na-FORWARD"
    ]
    assert mgr.neutron_lb_chains() == {}
    assert mgr.apply(verify=True).inputs == []  # second run: nothing to do
    mgr.take_over_tables([(4, "raw")])
    assert mgr.apply().ok  # a table netagent writes nothing to: a removal-only restore
    assert list(kernel.tables[(4, "raw")]) == ["PREROUTING"]


def test_a_failing_removal_leaves_netagents_chains_applied(
    kernel: FakeKernel,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kernel.tables[(4, "filter")] = {
        "INPUT": [],
        "FORWARD": ["-A FORWARD -j neutron-linuxbri-bad"],
        "neutron-linuxbri-bad": [],
    }
    mgr = IptablesManager("ns1", verify_interval=None, take_over_neutron_lb=True)
    mgr.set_chain(4, "filter", "na-x", [Rule((), DROP)])
    assert mgr.apply().ok
    assert "na-x" in kernel.tables[(4, "filter")]
    assert "neutron-linuxbri-bad" in kernel.tables[(4, "filter")]  # retried after a rescan
    assert len(kernel.restores) == 1


def _link(name: str, index: int, kind: str = "vxlan", **kw: int | str) -> Link:
    return Link(name=name, index=index, kind=kind, mtu=1450, up=True, **kw)  # type: ignore[arg-type]


def test_vxlan_adoption() -> None:
    spec = VxlanSpec(vni=1001, local="198.18.0.1", port=8472)
    old = _link("vxlan-1001", 6, vni=1001, vxlan_local="198.18.0.1", vxlan_port=8472, master=7)
    op = takeover.vxlan_adoption(Links({"vxlan-1001": old}), spec)
    assert not isinstance(op, str) and op is not None
    assert (op.name, op.new_name, op.learning) == ("vxlan-1001", "nvx-1001", False)
    other_port = _link("vxlan-1001", 6, vni=1001, vxlan_local="198.18.0.1", vxlan_port=4789)
    why = takeover.vxlan_adoption(Links({"vxlan-1001": other_port}), spec)
    assert isinstance(why, str) and "vxlan_udp_port" in why
    assert takeover.vxlan_adoption(Links({}), spec) is None
    bridge = _link("vxlan-1001", 6, kind="bridge")
    assert takeover.vxlan_adoption(Links({"vxlan-1001": bridge}), spec) is None

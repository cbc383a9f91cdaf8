"""Neutron's OVS layout as flows: pure functions from networks and ofports to flows.

``br-int`` (integration): every VM port is an access port with its network's *local VLAN*
tag; table 0 admits frames only from wired ports and from the patch ports, then OVS's
``NORMAL`` switches them within their VLAN. Everything else is dropped (fail closed: a
port plugged by os-vif but not wired by netagent forwards nothing).

``br-tun`` (tunnels), Neutron's table numbers:

* 0: from ``patch-int`` to 2, from the VXLAN port to 4, anything else dropped;
* 2: unicast to 20, broadcast/multicast to 22;
* 4: ``tun_id`` = VNI *from a known peer of that network* -> local VLAN, then 10
  (frames from unknown endpoints, or for a VNI the sender does not share, are dropped);
* 10: learn the source MAC (VLAN, MAC -> VNI, tunnel source) into 20, output to br-int;
* 20: learned unicast; a miss floods (22);
* 22: per local VLAN: strip it, set the VNI, send a copy to each peer of the network.

One flow-based VXLAN port (``remote_ip=flow``, ``key=flow``) serves every peer; the
destination is set per flow (``tun_dst``).

Physical bridges (``bridge_mappings``): frames of a flat network leave br-int tagged with
the local VLAN and leave the physical bridge untagged (``strip_vlan``); untagged frames from
the physical bridge get the local VLAN on br-int. VLAN networks translate local VLAN <->
segmentation id the same way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from netagent.ovs.flows import Flow

#: A flow in a table nothing jumps to: if it is gone, every flow is (ovs-vswitchd restart).
CANARY = Flow(253, 0, "", "drop")
LEARN_IDLE = 300

T_PATCH_FROM_INT, T_FROM_TUNNEL, T_LEARN, T_UCAST_LEARNED, T_FLOOD = 2, 4, 10, 20, 22


@dataclasses.dataclass(frozen=True)
class NetworkFlows:
    """What the flows of one network depend on."""

    local_vlan: int
    kind: str  # "vxlan" | "flat" | "vlan" | "local"
    segmentation_id: int | None = None
    #: physical bridge (flat/vlan) with the ofports of its patch ports (br-int side, own side)
    physical: tuple[str, int, int] | None = None
    peers: tuple[str, ...] = ()


def port_flows(ofport: int) -> list[Flow]:
    """br-int's flows of one wired VM port (admitted in table 0, then ``NORMAL``)."""
    return [Flow(0, 10, f"in_port={ofport}", "NORMAL")]


def integration_flows(
    wired_ofports: Iterable[int],
    patch_tun: int | None,
    networks: Iterable[NetworkFlows],
) -> list[Flow]:
    flows = [CANARY, Flow(0, 0, "", "drop")]
    for ofport in sorted(set(wired_ofports)):
        flows += port_flows(ofport)
    if patch_tun is not None:
        flows.append(Flow(0, 10, f"in_port={patch_tun}", "NORMAL"))
    for net in networks:
        if net.physical is None:
            continue
        _bridge, int_side, _phy_side = net.physical
        if net.kind == "flat":
            match = f"in_port={int_side},vlan_tci=0x0000/0x1fff"
        else:
            match = f"in_port={int_side},dl_vlan={net.segmentation_id}"
        flows.append(Flow(0, 20, match, f"mod_vlan_vid:{net.local_vlan},NORMAL"))
    return flows


def physical_flows(bridge: str, phy_side: int, networks: Iterable[NetworkFlows]) -> list[Flow]:
    """Flows of one physical bridge: its own ports switch normally; from br-int only the
    local VLANs of networks mapped to it leave (translated)."""
    flows = [CANARY, Flow(0, 0, "", "NORMAL"), Flow(0, 2, f"in_port={phy_side}", "drop")]
    for net in networks:
        if net.physical is None or net.physical[0] != bridge:
            continue
        match = f"in_port={phy_side},dl_vlan={net.local_vlan}"
        if net.kind == "flat":
            action = "strip_vlan,NORMAL"
        else:
            action = f"mod_vlan_vid:{net.segmentation_id},NORMAL"
        flows.append(Flow(0, 4, match, action))
    return flows


def tunnel_flows(patch_int: int, vxlan: int, networks: Iterable[NetworkFlows]) -> list[Flow]:
    flows = [
        CANARY,
        Flow(0, 0, "", "drop"),
        Flow(0, 1, f"in_port={patch_int}", f"resubmit(,{T_PATCH_FROM_INT})"),
        Flow(0, 1, f"in_port={vxlan}", f"resubmit(,{T_FROM_TUNNEL})"),
        Flow(
            T_PATCH_FROM_INT,
            0,
            "dl_dst=00:00:00:00:00:00/01:00:00:00:00:00",
            f"resubmit(,{T_UCAST_LEARNED})",
        ),
        Flow(
            T_PATCH_FROM_INT,
            0,
            "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00",
            f"resubmit(,{T_FLOOD})",
        ),
        Flow(T_FROM_TUNNEL, 0, "", "drop"),
        Flow(
            T_LEARN,
            1,
            "",
            f"learn(table={T_UCAST_LEARNED},idle_timeout={LEARN_IDLE},priority=1,"
            "NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],"
            "load:0->NXM_OF_VLAN_TCI[],load:NXM_NX_TUN_ID[]->NXM_NX_TUN_ID[],"
            "load:NXM_NX_TUN_IPV4_SRC[]->NXM_NX_TUN_IPV4_DST[],"
            f"output:NXM_OF_IN_PORT[]),output:{patch_int}",
        ),
        Flow(T_UCAST_LEARNED, 0, "", f"resubmit(,{T_FLOOD})"),
        Flow(T_FLOOD, 0, "", "drop"),
    ]
    for net in networks:
        if net.kind != "vxlan" or net.segmentation_id is None:
            continue
        vni = net.segmentation_id
        for peer in net.peers:
            flows.append(
                Flow(
                    T_FROM_TUNNEL,
                    1,
                    f"tun_id={vni:#x},tun_src={peer}",
                    f"mod_vlan_vid:{net.local_vlan},resubmit(,{T_LEARN})",
                )
            )
        if net.peers:
            copies = ",".join(f"set_field:{peer}->tun_dst,output:{vxlan}" for peer in net.peers)
            flows.append(
                Flow(
                    T_FLOOD,
                    1,
                    f"dl_vlan={net.local_vlan}",
                    f"strip_vlan,set_tunnel:{vni:#x},{copies}",
                )
            )
    return flows


def peers_of(tunnel_peers: Mapping[str, object], local_ip: str | None) -> tuple[str, ...]:
    """The distinct tunnel endpoints of a network's other hosts, sorted, without ours."""
    return tuple(sorted({str(ip) for ip in tunnel_peers.values()} - {local_ip or ""}))

"""The flow-mod encoder's refusals and message framing (its encodings are compared with
ovs-ofctl's on a real switch in tests/functional/ovs/test_flows.py)."""

from __future__ import annotations

import struct

import pytest

from netagent.privileged import flowmod
from netagent.privileged.errors import InvalidArgument

COOKIE = "cookie=0x4e61410000000001"


@pytest.mark.parametrize(
    "line",
    [
        "table=0,actions=drop\nx",
        "table=0,priority=1",  # no actions
        "table=0actions=drop",
        "table=0,actions=controller",
        "table=0,actions=output:NXM_NO_SUCH[]",
        "table=0,actions=output:0",
        "table=0,actions=output:4294967290",  # a reserved port by number
        "table=0,ip,actions=drop",
        "table=0,in_port=1,in_port=2,actions=drop",
        "table=0,dl_vlan=4096,actions=drop",
        "table=0,vlan_tci=0x2000/0xe000,actions=drop",  # PCP bits
        "table=0,dl_dst=01:00:00:00:00,actions=drop",
        "table=0,tun_src=198.18.0.256,actions=drop",
        "table=256,actions=drop",
        "priority=65536,actions=drop",
        "table=0,actions=resubmit(,255)",
        "table=0,actions=resubmit(1,2)",
        "table=0,actions=set_field:fd00::1->tun_dst",
        "table=0,actions=learn(table=20,NXM_OF_ETH_DST[]=NXM_NX_TUN_ID[])",  # widths differ
        "table=0,actions=learn(table=20,NXM_OF_VLAN_TCI[0..16])",
        "table=0,actions=learn(table=20,load:0x10000->NXM_OF_VLAN_TCI[])",
        "table=0,actions=learn(table=20,NXM_OF_IP_SRC[])",
        "table=0,actions=learn(table=20,output:NXM_OF_IN_PORT[]",
        "delete cookie=0x1",
        "delete table=0",
    ],
)
def test_lines_netagent_never_writes_are_refused(line: str) -> None:
    with pytest.raises(InvalidArgument):
        flowmod.flow_mod(f"{COOKIE},{line}" if not line.startswith("delete") else line, 7)


def test_a_flow_mod_is_one_framed_message_padded_to_8_bytes() -> None:
    line = (
        f"{COOKIE},table=10,priority=1,actions=learn(table=20,idle_timeout=300,priority=1,"
        "NXM_OF_VLAN_TCI[0..11],NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[],load:0->NXM_OF_VLAN_TCI[],"
        "output:NXM_OF_IN_PORT[]),output:1"
    )
    message = flowmod.flow_mod(line, 7)
    version, kind, length, xid = flowmod.HEADER.unpack_from(message)
    assert (version, kind, length, xid) == (flowmod.OFP14, flowmod.T_FLOW_MOD, len(message), 7)
    assert len(message) % 8 == 0
    cookie, mask, table, command = struct.unpack_from("!QQBB", message, 8)
    assert (cookie, mask, table, command) == (0x4E61410000000001, 0, 10, 0)


def test_delete_by_cookie_covers_every_table() -> None:
    message = flowmod.flow_mod("delete cookie=0x4e6141/-1", 3)
    cookie, mask, table, command = struct.unpack_from("!QQBB", message, 8)
    assert (cookie, mask, table, command) == (0x4E6141, (1 << 64) - 1, 0xFF, 3)

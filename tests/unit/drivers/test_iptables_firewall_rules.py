"""Unit tests of the iptables layer additions the firewall driver needs (u32 match)."""

from __future__ import annotations

import pytest

from netagent.linux.iptables import DROP, U32, Proto, Rule
from netagent.privileged import iptables as priv


def test_u32_renders_terms_joined() -> None:
    rule = Rule((Proto(58), U32(((4, 0xFF00, 0x3A00), (48, 0xFFFFFFFF, 0xFD000000)))), DROP)
    assert rule.render(6) == (
        "-p ipv6-icmp -m u32 --u32 4&0xff00=0x3a00&&48=0xfd000000",
        "-j DROP",
    )


@pytest.mark.parametrize(
    "terms",
    [
        (),
        ((4, 0xFF, 0x100),),  # value outside mask
        ((-1, 0xFF, 0),),
        ((4, 2**32, 0),),
        ((4, 0xFF),),
        (("4", 0xFF, 0),),
        tuple((4, 0xFF, 0) for _ in range(11)),
    ],
)
def test_u32_rejects_bad_terms(terms: tuple[tuple[int, int, int], ...]) -> None:
    with pytest.raises(ValueError):
        U32(terms)


def test_u32_line_passes_privileged_grammar() -> None:
    text = (
        "*filter\n:na-x - [0:0]\n"
        "-A na-x -p ipv6-icmp -m u32 --u32 4&0xff00=0x3a00 -m comment --comment na:0 -j DROP\n"
        "COMMIT\n"
    )
    priv.check_restore_input("filter", text)
    with pytest.raises(priv.IptablesInputError):
        priv.check_restore_input("filter", text.replace("0x3a00", '"0x3a00"'))

"""ipset manager on the real kernel: swap and in-place changes without a gap, /0,
destroy ordering."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from netagent.linux import ipset as ipset_mod
from netagent.linux.ipset import IpsetManager
from netagent.linux.iptables import ACCEPT, DROP, IptablesManager, Jump, Proto, Rule, SetMatch
from netagent.privileged.ipset import list_names
from tests.functional.iptables.conftest import A4, A4_EXTRA, B4, Pair, ping

SET = "na4testset"


def guard_icmp(ipt: IptablesManager, set_name: str) -> None:
    ipt.set_chain(
        4,
        "filter",
        "na-guard",
        [Rule((Proto(1), SetMatch(set_name, "src")), ACCEPT), Rule((Proto(1),), DROP)],
    )
    ipt.set_jumps(4, "filter", "INPUT", [Rule((), Jump("na-guard"))])


def _flood(pair: Pair, count: int) -> subprocess.Popen[str]:
    """Pings from A4 (a member that stays) to B4 every 5 ms, bounded by ``count``."""
    return subprocess.Popen(
        [
            *("ip", "netns", "exec", pair.a, "ping", "-q", "-i", "0.005", "-c", str(count)),
            *("-W", "1", "-I", A4, B4),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def _received(out: str) -> int:
    return int(re.search(r"(\d+) received", out).group(1))  # type: ignore[union-attr]


def test_in_place_membership_change_without_gap(pair: Pair, backend: str) -> None:
    """Small changes are add/del on the live set: a member that stays loses nothing."""
    ipset = IpsetManager(pair.b)
    ipt = IptablesManager(pair.b, backend=backend)
    ipset.set_members(SET, 4, [A4, *A4_EXTRA])
    assert ipset.apply().failed == {}
    guard_icmp(ipt, SET)
    assert ipt.apply().ok
    assert ping(pair.a, B4, A4_EXTRA[0]) and ping(pair.a, B4, A4_EXTRA[1])
    flood = _flood(pair, 600)
    ipset.set_members(SET, 4, [A4, A4_EXTRA[0]])  # one member removed, in place
    assert ipset.apply().inputs == [f"del {SET} {A4_EXTRA[1]}\n"]
    changes = 1
    deadline = time.monotonic() + 20
    while flood.poll() is None and time.monotonic() < deadline:
        gone, kept = A4_EXTRA[(changes + 1) % 2], A4_EXTRA[changes % 2]
        ipset.set_members(SET, 4, [A4, kept])
        result = ipset.apply()
        assert result.failed == {}
        assert result.inputs == [f"del {SET} {gone}\nadd {SET} {kept}\n"]
        changes += 1
    out, _ = flood.communicate(timeout=30)
    assert changes >= 10
    assert _received(out) == 600, out
    ipset.set_members(SET, 4, [A4, A4_EXTRA[0]])
    assert ipset.apply().failed == {}
    assert ping(pair.a, B4, A4_EXTRA[0]) and not ping(pair.a, B4, A4_EXTRA[1])
    # /0 in place: its two /1 halves are added, the now redundant members stay
    ipset.set_members(SET, 4, ["0.0.0.0/0", A4])
    result = ipset.apply()
    assert result.inputs == [
        f"del {SET} {A4_EXTRA[0]}\nadd {SET} 0.0.0.0/1\nadd {SET} 128.0.0.0/1\n"
    ]
    assert ping(pair.a, B4, A4_EXTRA[0]) and ping(pair.a, B4, A4_EXTRA[1])


def test_in_place_falls_back_to_swap_when_the_set_is_gone(pair: Pair) -> None:
    ipset = IpsetManager(pair.b)
    ipset.set_members(SET, 4, [A4])
    assert ipset.apply().failed == {}
    subprocess.run(["ip", "netns", "exec", pair.b, "ipset", "destroy", SET], check=True)
    ipset.set_members(SET, 4, [A4, B4])
    result = ipset.apply()
    assert result.failed == {} and result.applied == {SET}
    assert "swap nt4testset na4testset" in result.inputs[-1]
    assert SET in list_names(pair.b)


def test_swap_changes_membership_without_gap(
    pair: Pair, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ipset_mod, "IN_PLACE_MAX", 0)
    ipset = IpsetManager(pair.b)
    ipt = IptablesManager(pair.b, backend=backend)
    ipset.set_members(SET, 4, [A4, A4_EXTRA[0]])
    assert ipset.apply().failed == {}
    guard_icmp(ipt, SET)
    assert ipt.apply().ok
    assert ping(pair.a, B4, A4_EXTRA[0]) and not ping(pair.a, B4, A4_EXTRA[1])
    flood = _flood(pair, 600)
    swaps = 0
    deadline = time.monotonic() + 20
    while flood.poll() is None and time.monotonic() < deadline:
        extra = A4_EXTRA[(swaps + 1) % 2]
        ipset.set_members(SET, 4, [A4, extra])
        result = ipset.apply()
        assert result.failed == {}
        assert "swap nt4testset na4testset" in result.inputs[0]
        swaps += 1
    out, _ = flood.communicate(timeout=30)
    assert swaps >= 10
    assert _received(out) == 600, out
    ipset.set_members(SET, 4, [A4, A4_EXTRA[1]])
    ipset.apply()
    assert ping(pair.a, B4, A4_EXTRA[1]) and not ping(pair.a, B4, A4_EXTRA[0])
    ipset.set_members(SET, 4, ["0.0.0.0/0"])
    assert ipset.apply().failed == {}
    assert ping(pair.a, B4, A4_EXTRA[0]) and ping(pair.a, B4, A4_EXTRA[1])


def test_destroy_waits_for_references(pair: Pair, backend: str) -> None:
    ipset = IpsetManager(pair.b)
    ipt = IptablesManager(pair.b, backend=backend)
    ipset.set_members(SET, 4, ["198.51.100.0/25"])
    ipset.set_members("na6other", 6, ["::/0", "fd00::/8"])
    assert ipset.apply().failed == {}
    guard_icmp(ipt, SET)
    assert ipt.apply().ok
    ipset.remove_set(SET)
    ipset.remove_set("na6other")
    result = ipset.destroy_unreferenced()
    assert result.applied == {"na6other"}
    assert set(result.failed) == {SET}
    ipt.remove_chain(4, "filter", "na-guard")
    ipt.clear_jumps(4, "filter", "INPUT")
    assert ipt.apply().ok
    assert ipset.destroy_unreferenced().applied == {SET}
    assert list_names(pair.b) == []


def test_bad_set_does_not_block_others(pair: Pair) -> None:
    ipset = IpsetManager(pair.b)
    ipset.set_members("na4good", 4, [A4])
    ipset.set_members("na4other", 4, [B4])
    with pytest.raises(ValueError, match="member"):
        ipset.set_members("na4bad", 4, ["fd00::1"])
    with pytest.raises(ValueError):
        ipset.set_members("na4bad\nflush", 4, [A4])
    assert ipset.apply().applied == {"na4good", "na4other"}
    subprocess.run(
        ["ip", "netns", "exec", pair.b, "ipset", "create", "na4clash", "hash:ip"], check=True
    )
    ipset.set_members("na4clash", 4, ["198.51.100.0/24"])  # exists with another type
    ipset.set_members("na4good", 4, [A4, B4])
    result = ipset.apply()
    assert set(result.failed) == {"na4clash"} and result.applied == {"na4good"}

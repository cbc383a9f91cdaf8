"""ipset member normalisation and restore text; conntrack filter reduction (no root)."""

from __future__ import annotations

import ipaddress

import pytest

from netagent.linux import ipset as ipset_mod
from netagent.linux.conntrack import ConntrackFilter, reduce_filters
from netagent.linux.ipset import IpsetManager, normalize_members, temporary_name
from netagent.privileged import conntrack as priv_ct
from netagent.privileged import ipset as priv_ipset


def test_zero_prefix_split() -> None:
    assert normalize_members(4, "hash:net", ["0.0.0.0/0", "198.51.100.7/32"]) == {
        "0.0.0.0/1",
        "128.0.0.0/1",
        "198.51.100.7",
    }
    assert normalize_members(6, "hash:net", ["::/0"]) == {"::/1", "8000::/1"}


@pytest.mark.parametrize(
    ("family", "kind", "member"),
    [
        (4, "hash:net", "fd00::1"),
        (4, "hash:ip", "198.51.100.0/24"),
        (4, "hash:net", "1.2.3.4\nflush"),
    ],
)
def test_bad_members(family: int, kind: str, member: str) -> None:
    with pytest.raises(ValueError, match="member"):
        normalize_members(family, kind, [member])


def test_names() -> None:
    assert temporary_name("na4abc") == "nt4abc"
    for bad in ("foreign", "na4 x", "na" + "x" * 30, "na4x\n"):
        with pytest.raises(ValueError):
            IpsetManager("ns").set_members(bad, 4, [])


def test_restore_text_golden(monkeypatch: pytest.MonkeyPatch) -> None:
    inputs: list[str] = []
    monkeypatch.setattr(ipset_mod.priv, "restore", lambda ns, text: inputs.append(text))
    mgr = IpsetManager("ns")
    mgr.set_members("na4g", 4, ["198.51.100.2", "198.51.100.0/25"])
    assert mgr.apply().applied == {"na4g"}
    assert inputs == [
        "create na4g hash:net family inet hashsize 1024 maxelem 65536\n"
        "create nt4g hash:net family inet hashsize 1024 maxelem 65536\n"
        "flush nt4g\n"
        "add nt4g 198.51.100.0/25\n"
        "add nt4g 198.51.100.2\n"
        "swap nt4g na4g\n"
        "destroy nt4g\n"
    ]
    assert mgr.apply().inputs == []


def test_privileged_ipset_grammar() -> None:
    for bad in ("destroy foreign", "add na4g 1.2.3.4 timeout 5", "add na4g 1.2.3.4\n-exist"):
        with pytest.raises(priv_ipset.IpsetInputError):
            priv_ipset.restore("ns", bad + "\n")
    # destroy takes netagent's sets only (destroy_neutron: test_neutron_lb_takeover)
    for name in ("NIPv4abc", "na4g;rm", "foreign"):
        with pytest.raises(priv_ipset.IpsetInputError):
            priv_ipset.destroy("ns", name)


def test_conntrack_reduce_and_render() -> None:
    a = ipaddress.ip_address("198.51.100.1")
    broad = ConntrackFilter(4, zone=5)
    narrow = ConntrackFilter(4, zone=5, src=a)
    other = ConntrackFilter(4, zone=6, proto=17)
    assert reduce_filters([narrow, broad, narrow, other, broad]) == [broad, other]
    assert priv_ct._filter_line(narrow.as_dict()) == "-D -f ipv4 -w 5 -s 198.51.100.1"
    with pytest.raises(ValueError):
        ConntrackFilter(6, src=a)
    with pytest.raises(ValueError):
        priv_ct._filter_line({"family": 4, "src": "1.2.3.4 -F"})


def test_parse_save_reads_netagent_sets_only_normalised() -> None:
    text = (
        "create na4abc hash:net family inet hashsize 1024 maxelem 65536 bucketsize 12 "
        "initval 0x1234\n"
        "add na4abc 192.0.2.10\n"
        "add na4abc 198.51.100.0/24\n"
        "create na6abc hash:net family inet6 hashsize 1024 maxelem 65536\n"
        "add na6abc fd00::1\n"
        "create foreign hash:ip family inet hashsize 1024 maxelem 65536\n"
        "add foreign 192.0.2.1\n"
        "create na4empty hash:net family inet hashsize 1024 maxelem 65536\n"
    )
    sets = ipset_mod.parse_save(text)
    assert set(sets) == {"na4abc", "na6abc", "na4empty"}
    assert sets["na4abc"].members == frozenset({"192.0.2.10", "198.51.100.0/24"})
    assert sets["na4abc"].family == 4 and sets["na6abc"].family == 6
    assert sets["na4empty"].members == frozenset()


def test_check_forgets_changed_sets_so_the_next_apply_rebuilds_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inputs: list[str] = []
    monkeypatch.setattr(ipset_mod.priv, "restore", lambda ns, text: inputs.append(text))
    mgr = IpsetManager("ns1")
    mgr.set_members("na4abc", 4, ["192.0.2.10", "192.0.2.11"])
    mgr.set_members("na4def", 4, ["192.0.2.12"])
    assert mgr.apply().failed == {}
    create = "create {} hash:net family inet hashsize 1024 maxelem 65536\n"
    kernel = (
        create.format("na4abc") + "add na4abc 192.0.2.10\nadd na4abc 192.0.2.11\n"
        + create.format("na4def") + "add na4def 192.0.2.12\n"
    )  # fmt: skip
    monkeypatch.setattr(ipset_mod.priv, "save", lambda ns: kernel)
    assert mgr.check() == set()
    # someone adds a member to one set and destroys the other
    kernel = create.format("na4abc") + (
        "add na4abc 192.0.2.10\nadd na4abc 192.0.2.11\nadd na4abc 192.0.2.99\n"
    )
    assert mgr.check() == {"na4abc", "na4def"}
    assert mgr.check() == set()  # reported once
    inputs.clear()
    assert mgr.apply().applied == {"na4abc", "na4def"}
    text = inputs[0]
    # rebuilt whole in a temporary set and swapped in, not edited in place
    assert "swap nt4abc na4abc" in text and "swap nt4def na4def" in text
    assert "192.0.2.99" not in text

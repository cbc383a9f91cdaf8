"""The state-file source: whole-file errors, per-object errors, cross-references."""

from __future__ import annotations

import copy
import json
import pickle
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from netagent.common.exceptions import NetagentError
from netagent.sources.statefile import (
    LoadResult,
    StateFileError,
    count_nodes,
    load_state,
    parse_state,
)

EXAMPLE = Path(__file__).parents[3] / "etc" / "netagent" / "examples" / "state.yaml"
VM_A = "9b97a353-9720-46f9-b29b-e40d5c7b67f4"
VM_B = "d7656e5b-9bea-426a-92bd-134fee0c1130"
WEB = "75891e18-af2c-4c03-acf1-34e4b696efb6"
ROUTER = "fb2380b9-fc60-48fb-8d70-b0ab051bd376"
FIP = "ddb03b93-3815-49db-8069-def966e1b279"
OTHER = "00000000-0000-4000-8000-000000000001"


@pytest.fixture
def doc() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))


def ports_by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in doc["ports"]}


def test_example_loads_without_errors() -> None:
    result = load_state(EXAMPLE)
    assert result.errors == ()
    counts = {
        k: len(getattr(result.state, k))
        for k in ("networks", "subnets", "ports", "routers", "agents")
    }
    assert counts == {"networks": 2, "subnets": 3, "ports": 4, "routers": 1, "agents": 2}
    router = result.state.routers[ROUTER]
    assert router.gateway is not None and len(router.interfaces) == 1
    assert router.gateway.mtu == 1500 and router.interfaces[0].mtu == 1450
    assert [f.id for f in router.floating_ips] == [FIP]
    assert len(result.state.security_groups[WEB].rules) == 8


def test_router_ports_get_the_other_subnets_of_their_network(doc: dict[str, Any]) -> None:
    ext_net = "f29dfae6-9fb2-45a2-8f4c-c3b83e6d0e85"
    doc["subnets"].append(
        {"id": OTHER, "network_id": ext_net, "ip_version": 4, "cidr": "198.51.100.0/24"}
    )
    result = parse_state(doc, "test")
    assert result.errors == ()
    router = result.state.routers[ROUTER]
    assert router.gateway is not None
    assert [(x.id, str(x.cidr)) for x in router.gateway.extra_subnets] == [
        (OTHER, "198.51.100.0/24")
    ]
    # the interface has an address in the tenant's IPv4 subnet only: the IPv6 one is extra
    assert [str(x.cidr) for x in router.interfaces[0].extra_subnets] == ["fd00:1::/64"]


def test_json_is_accepted(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    assert load_state(path).state == load_state(EXAMPLE).state


def test_one_bad_port_keeps_the_others(tmp_path: Path, doc: dict[str, Any]) -> None:
    ports_by_id(doc)[VM_B]["fixed_ips"][1]["ip_address"] = "fd00:1::zz"
    path = tmp_path / "state.yaml"
    path.write_text(yaml.safe_dump(doc))
    result = load_state(path)
    error, fip_error = result.errors
    assert (fip_error.kind, fip_error.field) == ("floatingip", "port_id")
    assert (error.kind, error.object_id, error.field) == ("port", VM_B, "fixed_ips[1].ip_address")
    assert error.location == f"{path} ports[1]"
    assert str(error).startswith(f"{path} ports[1]: port {VM_B}: field fixed_ips[1].ip_address:")
    assert set(result.state.ports) == set(ports_by_id(doc)) - {VM_B}
    # The floating IP pointed at the dropped port, so it goes too, with its own error.
    assert FIP not in result.state.floatingips


def test_dependent_objects_are_reported(doc: dict[str, Any]) -> None:
    ports_by_id(doc)[VM_B]["mac_address"] = "ff:ff:ff:ff:ff:ff"
    result = parse_state(doc, "mem")
    assert [(e.kind, e.object_id, e.field) for e in result.errors] == [
        ("port", VM_B, "mac_address"),
        ("floatingip", FIP, "port_id"),
    ]
    assert result.state.routers[ROUTER].floating_ips == ()


@pytest.mark.parametrize(
    ("section", "index", "key", "value", "kind", "field"),
    [
        ("ports", 0, "network_id", OTHER, "port", "network_id"),
        ("ports", 0, "security_groups", [OTHER], "port", "security_groups[0]"),
        (
            "ports",
            0,
            "fixed_ips",
            [{"subnet_id": OTHER, "ip_address": "192.0.2.10"}],
            "port",
            "fixed_ips[0].subnet_id",
        ),
        (
            "ports",
            0,
            "fixed_ips",
            [{"subnet_id": "9e9497ee-d3c4-47b8-87c6-85d20ae0e11c", "ip_address": "203.0.113.9"}],
            "port",
            "fixed_ips[0].subnet_id",
        ),
        (
            "ports",
            0,
            "fixed_ips",
            [{"subnet_id": "aa925d73-99b3-4226-90c5-334e1ed70a7d", "ip_address": "192.0.3.1"}],
            "port",
            "fixed_ips[0].ip_address",
        ),
        (
            "ports",
            1,
            "fixed_ips",
            [{"subnet_id": "aa925d73-99b3-4226-90c5-334e1ed70a7d", "ip_address": "192.0.2.10"}],
            "port",
            "fixed_ips[0]",
        ),
        ("ports", 1, "mac_address", "fa:16:3e:00:0a:01", "port", "mac_address"),
        ("subnets", 0, "network_id", OTHER, "subnet", "network_id"),
        ("floatingips", 0, "floating_network_id", OTHER, "floatingip", "floating_network_id"),
        ("floatingips", 0, "router_id", OTHER, "floatingip", "router_id"),
        ("floatingips", 0, "fixed_ip_address", "192.0.2.99", "floatingip", "fixed_ip_address"),
        (
            "floatingips",
            0,
            "floating_network_id",
            "5bf5b5fe-d6ab-4868-bac7-a0dea247a672",
            "floatingip",
            "router_id",
        ),
        (
            "routers",
            0,
            "external_gateway_info",
            {"network_id": OTHER},
            "router",
            "external_gateway_info.network_id",
        ),
        (
            "security_groups",
            0,
            "security_group_rules",
            [{"direction": "ingress", "remote_group_id": OTHER}],
            "security_group",
            "security_group_rules[0].remote_group_id",
        ),
        (
            "security_groups",
            0,
            "security_group_rules",
            [{"direction": "ingress", "remote_address_group_id": OTHER}],
            "security_group",
            "security_group_rules[0].remote_address_group_id",
        ),
    ],
)
def test_broken_references(
    doc: dict[str, Any], section: str, index: int, key: str, value: object, kind: str, field: str
) -> None:
    target = doc[section][index]
    target[key] = value
    result = parse_state(doc, "mem")
    first = result.errors[0]
    assert (first.kind, first.field) == (kind, field)
    assert first.location == f"mem {section}[{index}]"
    if section != "agents":
        assert first.object_id == target["id"]
        assert target["id"] not in getattr(result.state, section)


def test_a_group_referring_to_a_dropped_group_is_dropped(doc: dict[str, Any]) -> None:
    other = {
        "id": OTHER,
        "name": "other",
        "security_group_rules": [{"direction": "ingress", "remote_group_id": WEB}],
    }
    doc["security_groups"].append(other)
    doc["security_groups"][0]["security_group_rules"].append(
        {"direction": "ingress", "protocol": "nope"}
    )
    result = parse_state(doc, "mem")
    assert [(e.kind, e.object_id) for e in result.errors][:2] == [
        ("security_group", WEB),
        ("security_group", OTHER),
    ]
    assert result.state.security_groups == {}
    # Ports in the dropped group go too (fail closed rather than unfiltered).
    assert VM_A not in result.state.ports


def test_top_level_rules_are_attached(doc: dict[str, Any]) -> None:
    doc["security_group_rules"] = [
        {
            "id": OTHER,
            "security_group_id": WEB,
            "direction": "ingress",
            "protocol": "udp",
            "port_range_min": 53,
            "port_range_max": 53,
        },
        {"security_group_id": WEB, "direction": "ingress"},
        {
            "id": "00000000-0000-4000-8000-000000000002",
            "security_group_id": OTHER,
            "direction": "ingress",
        },
    ]
    result = parse_state(doc, "mem")
    assert [(e.kind, e.field) for e in result.errors] == [
        ("security_group_rule", "id"),
        ("security_group_rule", "security_group_id"),
    ]
    assert result.state.security_groups[WEB].rules[-1].id == OTHER


def test_duplicates(doc: dict[str, Any]) -> None:
    doc["ports"].append(copy.deepcopy(doc["ports"][0]))
    doc["agents"].append({"host": "host-a"})
    result = parse_state(doc, "mem")
    assert [(e.kind, e.field, e.location) for e in result.errors] == [
        ("port", "id", "mem ports[4]"),
        ("agent", "host", "mem agents[2]"),
    ]
    assert "duplicate of mem ports[0]" in result.errors[0].reason


def test_interop_name_collision_on_one_host(doc: dict[str, Any]) -> None:
    clash = copy.deepcopy(ports_by_id(doc)[VM_A])
    clash.update(
        id=VM_A[:11] + "00-4000-8000-000000000000", mac_address="fa:16:3e:00:0a:99", fixed_ips=[]
    )
    doc["ports"].append(clash)
    [error] = parse_state(doc, "mem").errors
    assert (error.object_id, error.field) == (clash["id"], "id")


def test_two_gateway_ports(doc: dict[str, Any]) -> None:
    gateway = copy.deepcopy(doc["ports"][3])
    gateway.update(id=OTHER, mac_address="fa:16:3e:00:01:09", fixed_ips=[])
    doc["ports"].append(gateway)
    result = parse_state(doc, "mem")
    assert [(e.kind, e.field) for e in result.errors] == [
        ("router", "gateway"),
        ("floatingip", "router_id"),
    ]


def test_empty_sections_and_extension_keys() -> None:
    result = parse_state({"networks": None, "ports": [], "x-defaults": {"anything": 1}}, "mem")
    assert result == LoadResult(result.state, ())
    assert result.state.ports == {}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (None, "the top level must be a mapping, got empty"),
        ([], "the top level must be a mapping, got list"),
        ({"port": []}, "unknown top-level key 'port'"),
        ({"ports": {"id": "x"}}, "ports must be a list, got dict"),
        ({1: []}, "unknown top-level key 1"),
    ],
)
def test_unusable_documents(document: object, reason: str) -> None:
    with pytest.raises(StateFileError) as info:
        parse_state(document, "mem")
    assert (info.value.path, info.value.reason) == ("mem", reason)
    assert str(info.value) == f"mem: {reason}"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the top level must be a mapping, got empty"),
        (b"ports: [\n", "not valid YAML/JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"ports: !!python/object:os.system {}\n", "not valid YAML/JSON"),
        (b"- a\n- b\n", "the top level must be a mapping, got list"),
        (b"networks: [{mtu: 2026-13-45}]\n", "not valid YAML/JSON"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "state.yaml"
    path.write_bytes(content)
    with pytest.raises(StateFileError) as info:
        load_state(path)
    assert info.value.path == str(path)
    assert info.value.reason.startswith(reason)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StateFileError) as info:
        load_state(tmp_path / "nope.yaml")
    assert "cannot read" in info.value.reason
    assert isinstance(info.value, NetagentError)
    rebuilt = pickle.loads(pickle.dumps(info.value))
    assert (rebuilt.path, rebuilt.reason) == (info.value.path, info.value.reason)


TENANT_NET = "5bf5b5fe-d6ab-4868-bac7-a0dea247a672"


@pytest.mark.parametrize(("mtu", "refused"), [(100, True), (1279, True), (1280, False)])
def test_network_with_an_ipv6_subnet_needs_mtu_1280(
    doc: dict[str, Any], mtu: int, refused: bool
) -> None:
    """Issue 17 item 9: MTU 100 on a network with an IPv6 subnet was accepted."""
    next(n for n in doc["networks"] if n["id"] == TENANT_NET)["mtu"] = mtu
    result = parse_state(doc, "mem")
    assert (TENANT_NET not in result.state.networks) is refused
    errors = [e for e in result.errors if e.kind == "network"]
    if refused:
        (error,) = errors
        assert (error.object_id, error.field) == (TENANT_NET, "mtu")
        assert f"{mtu} is below 1280" in error.reason and "IPv6 subnet" in error.reason
    else:
        assert errors == []


def test_low_mtu_without_ipv6_is_accepted(doc: dict[str, Any]) -> None:
    doc["subnets"] = [s for s in doc["subnets"] if s["ip_version"] == 4]
    for p in doc["ports"]:
        p["fixed_ips"] = [f for f in p["fixed_ips"] if ":" not in f["ip_address"]]
    next(n for n in doc["networks"] if n["id"] == TENANT_NET)["mtu"] = 1000
    result = parse_state(doc, "mem")
    assert result.state.networks[TENANT_NET].mtu == 1000
    assert [e for e in result.errors if e.kind == "network"] == []


def _alias_bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels + 1):
        refs = ",".join([f"*a{n - 1}"] * 10)
        lines.append(f"a{n}: &a{n} [{refs}]")
    return "\n".join(lines) + f"\nnetworks: [*a{levels}]\n"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(_alias_bomb(), id="billion-laughs"),
        pytest.param("networks: [" + ",".join(["0"] * 900_000) + "]\n", id="flat-list"),
    ],
)
def test_node_limit_refuses_before_building(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(text)
    start = time.monotonic()
    with pytest.raises(StateFileError, match="more than 800000 YAML nodes"):
        load_state(path)
    assert time.monotonic() - start < 5.0


def test_node_count_expands_aliases() -> None:
    # mapping, key a, list, 2 scalars (5), key b, alias of the 3-node list
    assert count_nodes("a: &x [1, 2]\nb: *x\n", 100) == 9
    assert count_nodes(_alias_bomb(), 1000) > 1000


def test_file_over_16_mib_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_bytes(b"#" * (16 * 1024 * 1024 + 1))
    with pytest.raises(StateFileError, match="larger than"):
        load_state(path)

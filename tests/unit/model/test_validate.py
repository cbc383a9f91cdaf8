"""Field validators: accepted values, normalisation and refused values."""

from __future__ import annotations

import ipaddress
import pickle

import pytest

from netagent.common.exceptions import NetagentError
from netagent.model import ModelError
from netagent.model import validate as v


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        (v.uuid, "3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11", "3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11"),
        (v.mac, "FA:16:3E:12:34:56", "fa:16:3e:12:34:56"),
        (v.mac, "fa-16-3e-12-34-56", "fa:16:3e:12:34:56"),
        (v.mac, "02:00:00:00:00:01", "02:00:00:00:00:01"),
        (v.hostname, "cmp1.example.org", "cmp1.example.org"),
        (v.hostname, "host_a-1", "host_a-1"),
        (v.physical_network, "physnet1", "physnet1"),
        (v.device_owner, "network:router_interface", "network:router_interface"),
        (v.device_owner, "", ""),
        (v.name, "réseau-1", "réseau-1"),
        (v.name, "x" * 255, "x" * 255),
        (v.name, "my network", "my network"),
        (v.name, 'a"b', 'a"b'),
        (v.name, "John's router", "John's router"),
        (v.label, "Netagent agent", "Netagent agent"),
        (v.token, "dhcp827da361-abc.def", "dhcp827da361-abc.def"),
        (v.ip_address, "192.0.2.1", ipaddress.ip_address("192.0.2.1")),
        (v.ip_address, "FD00:1::A", ipaddress.ip_address("fd00:1::a")),
        (v.host_or_cidr, "192.0.2.7", ipaddress.ip_network("192.0.2.7/32")),
        (v.host_or_cidr, "192.0.2.7/24", ipaddress.ip_network("192.0.2.0/24")),
        (v.host_or_cidr, "0.0.0.0/0", ipaddress.ip_network("0.0.0.0/0")),
        (v.host_or_cidr, "::/0", ipaddress.ip_network("::/0")),
        (v.host_or_cidr, "fd00::1", ipaddress.ip_network("fd00::1/128")),
        (v.strict_cidr, "fd00:1::/64", ipaddress.ip_network("fd00:1::/64")),
        (v.boolean, False, False),
    ],
)
def test_accepts(check: object, value: object, expected: object) -> None:
    assert check(value) == expected  # type: ignore[operator]


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (v.uuid, "3F1C2A8E-5D0B-4C57-9A57-0D5F8B5D2E11"),
        (v.uuid, "3f1c2a8e5d0b4c579a570d5f8b5d2e11"),
        (v.uuid, "3f1c2a8e-5d0b-4c57-9a57-0d5f8b5d2e11\n"),
        (v.uuid, 42),
        (v.uuid, None),
        (v.mac, "01:00:5e:00:00:01"),
        (v.mac, "ff:ff:ff:ff:ff:ff"),
        (v.mac, "00:00:00:00:00:00"),
        (v.mac, "fa:16:3e:12:34"),
        (v.mac, "fa:16:3e-12:34:56"),
        (v.mac, "fa:16:3e:12:34:5g"),
        (v.mac, 0xFA163E123456),
        (v.hostname, ""),
        (v.hostname, "host a"),
        (v.hostname, "-host"),
        (v.hostname, "host\n"),
        (v.hostname, "h" * 256),
        (v.physical_network, "phys net"),
        (v.physical_network, "p" * 65),
        (v.physical_network, ""),
        (v.device_owner, "compute:Nova"),
        (v.device_owner, "compute nova"),
        (v.name, "a\\b"),
        (v.name, "a\tb"),
        (v.name, "a\u00a0b"),
        (v.name, "a\u200bb"),
        (v.name, "a\u202eb"),
        (v.name, "a\x00b"),
        (v.name, "\u201cq\u201d"),
        (v.name, "x" * 256),
        (v.label, "two  spaces"),
        (v.label, " lead"),
        (v.token, ""),
        (v.token, "a b"),
        (v.ip_address, "1.2.3"),
        (v.ip_address, "192.0.2.1/32"),
        (v.ip_address, "fe80::1%eth0"),
        (v.ip_address, "fe80::1%a b"),
        (v.ip_address, "01.2.3.4"),
        (v.ip_address, " 192.0.2.1"),
        (v.ip_address, "192.0.2.1\n"),
        (v.ip_address, "\uff11.2.3.4"),
        (v.ip_address, 3221225985),
        (v.host_or_cidr, "192.0.2.0/33"),
        (v.host_or_cidr, "192.0.2.0/"),
        (v.host_or_cidr, "192.0.2.0/٢٤"),
        (v.strict_cidr, "192.0.2.1/24"),
        (v.strict_cidr, "192.0.2.0"),
        (v.boolean, "true"),
        (v.boolean, 1),
        (v.boolean, None),
    ],
)
def test_refuses(check: object, value: object) -> None:
    with pytest.raises(v.FieldError):
        check(value)  # type: ignore[operator]


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [(True, 0, 1), (1.0, 0, 5), ("1", 0, 5), (0, 1, 5), (6, 1, 5), (10**5000, 0, 5), (None, 0, 5)],
    ids=["bool", "float", "str", "low", "high", "huge", "none"],
)
def test_integer_refuses(value: object, low: int, high: int) -> None:
    with pytest.raises(v.FieldError):
        v.integer(value, low, high)


@pytest.mark.parametrize(
    "value",
    [
        10**5000,
        -(10**5000),
        "x" * 10_000,
        "a\nb\x00'\"",
        ["list"],
        {"k": 1},
        1.5e308,
        b"bytes",
        None,
    ],
    ids=["huge", "-huge", "long", "junk", "list", "dict", "float", "bytes", "none"],
)
def test_show_is_short_single_line_and_never_raises(value: object) -> None:
    text = v.show(value)
    assert len(text) <= 80
    assert text.isprintable()


def test_reader_paths_and_shapes() -> None:
    reader = v.Reader({"a": [{"b": "x"}], "c": "s"}, "port", "id-1")
    [(path, item)] = reader.items("a")
    sub = reader.sub(path, item)
    with pytest.raises(ModelError) as info:
        sub.req("b", v.uuid)
    assert info.value.field == "a[0].b"
    assert info.value.object_id == "id-1"
    with pytest.raises(ModelError) as info:
        reader.items("c")
    assert info.value.field == "c"
    with pytest.raises(ModelError) as info:
        v.Reader(["not", "a", "mapping"], "port")
    assert info.value.field == "<object>"
    with pytest.raises(ModelError) as info:
        v.Reader({"a": list(range(10))}, "port").items("a", max_len=5)
    assert "more than 5" in info.value.reason


def test_model_error_text_and_rebuild() -> None:
    error = ModelError("port", "3f1c", "fixed_ips[1].ip_address", "not an IP address: '1.2.3'")
    assert str(error) == "port 3f1c: field fixed_ips[1].ip_address: not an IP address: '1.2.3'"
    assert isinstance(error, NetagentError)
    rebuilt = ModelError(*error.args)
    assert str(rebuilt) == str(error)
    assert rebuilt.field == error.field
    again = pickle.loads(pickle.dumps(error.with_location("state.yaml ports[2]")))
    assert str(again) == f"state.yaml ports[2]: {error}"
    assert again.location == "state.yaml ports[2]"
    assert str(ModelError("agent", None, "host", "r")) == "agent: field host: r"

"""The explain section of the status document: built by the agent, parsed back typed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from netagent.explain import snapshot
from tests.unit.explain import topology as t


def test_round_trip_keeps_every_field() -> None:
    state = t.state()
    doc = json.loads(json.dumps(t.document()))
    snap = snapshot.parse(doc, {"backend": "nft"})
    assert snap.host == "host-a"
    for pid, port in state.ports.items():
        got = snap.ports[pid]
        assert (got.addresses, got.mac_address, got.host) == (
            port.addresses,
            port.mac_address,
            port.host,
        )
        assert (got.security_groups, got.allowed_address_pairs) == (
            port.security_groups,
            port.allowed_address_pairs,
        )
    assert snap.security_groups == dict(state.security_groups)
    assert snap.networks[t.NET].tunnel_peers == {"host-b": state.agents["host-b"].tunneling_ip}
    assert snap.planned == {t.VM1, t.VM3, t.VM4}
    members = snap.members[(t.SSH, 4)]
    assert {str(m) for m in members} == {"192.0.2.10/32", "192.0.2.64/28", "192.0.2.30/32"}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("version",), 2),
        (("ports", 0, "mac_address"), "not-a-mac"),
        (("ports", 0, "fixed_ips"), "192.0.2.1"),
        (("security_groups", 0, "rules", 0, "direction"), "sideways"),
        (("security_groups", 0, "rules", 0, "protocol"), 70000),
        (("networks", 0, "tunnel_peers"), {"host-b": "nope"}),
        (("members",), []),
    ],
)
def test_bad_documents_are_refused(path: tuple[Any, ...], value: object) -> None:
    doc = copy.deepcopy(t.document())
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError):
        snapshot.parse(doc)

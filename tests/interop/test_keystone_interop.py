"""Neutron really runs with ``auth_strategy = keystone`` against the tier's Keystone."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.interop import neutron_server
from tests.interop.api import NeutronApi, Token


@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": "not-a-token"}])
def test_neutron_refuses_requests_without_a_valid_token(
    neutron: neutron_server.NeutronServer, headers: dict[str, str]
) -> None:
    req = urllib.request.Request(neutron.url + "/v2.0/networks", headers=headers)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 401


def test_catalog_and_service_user(neutron: neutron_server.NeutronServer) -> None:
    catalog = neutron.keystone.api().request("GET", "/auth/catalog")["catalog"]
    (network,) = [s for s in catalog if s["type"] == "network"]
    assert sorted(e["interface"] for e in network["endpoints"]) == ["admin", "internal", "public"]
    assert {e["url"] for e in network["endpoints"]} == {neutron.url}
    assert neutron.service_user is not None
    # the service user's own token is accepted by Neutron, as keystonemiddleware's is
    assert "networks" in NeutronApi(neutron.url, Token(neutron.service_user)).get("/v2.0/networks")

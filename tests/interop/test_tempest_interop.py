"""Tempest (47.0.0, with neutron-tempest-plugin 3.3.0 and netagent's own plugin) against
a Neutron of this module on the tier's Keystone, with the L3 router plugin, two hosts
running the real netagent agent (iptables firewall, nft; ``[agent] l3_driver = namespace``,
so each is also an L3 agent; a veth ``eth-phys`` in each host mapped to ``physnet1``) and,
for the DHCP tests, the stock neutron-dhcp-agent on one of them, plugged by netagent's
interface driver.

The server is not the session's: that one runs without the router plugin (see
``test_routers_interop.py``). Tempest finds it through Keystone's catalog, in a region of
its own (:data:`REGION`). Routers' gateways go on a flat external network on ``physnet1``.

One test, two ``tempest run`` at concurrency 2 that must pass with no failure:
:data:`tests.interop.tempest_run.MAIN`, then, with the DHCP agent started,
:data:`tests.interop.tempest_run.WITH_DHCP_AGENT`. The counts are printed; the whole output
is in the test's tmp dir (``tempest-run-<name>.log``, ``workspace/logs/tempest.log``) and
its tail in the report.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.interop import cloud, dhcp, neutron_server, tempest_run

HOSTS = {"tempest-a": "198.18.0.11", "tempest-b": "198.18.0.12"}
DHCP_HOST = "tempest-a"
FIREWALL = "iptables"
PHYSICAL_INTERFACE = "eth-phys"
REGION = "RegionTempest"
EXTERNAL_CIDR = "198.51.100.0/24"
#: neutron-tempest-plugin's router classes keep their routers until the class ends: more
#: than Neutron's default of 10 per project.
QUOTAS = "[quotas]\nquota_router = 100\n"


def _wait_alive(server: neutron_server.NeutronServer, host: str, agent_type: str) -> None:
    api = server.api()
    neutron_server.wait_until(
        f"the {agent_type} on {host} alive",
        lambda: any(a["alive"] for a in api.agents(host=host, agent_type=agent_type)),
        timeout=60,
        interval=0.5,
    )


@pytest.fixture(scope="module")
def server(
    neutron: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[neutron_server.NeutronServer]:
    with neutron_server.second_server(
        neutron,
        tmp_path_factory.mktemp("neutron-tempest"),
        "neutron-tempest",
        service_plugins="router",
        region=REGION,
        extra_config=QUOTAS,
    ) as srv:
        print("\nneutron-tempest " + srv.timing_line())
        yield srv


@pytest.fixture(scope="module")
def fabric(
    server: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[cloud.InteropFabric]:
    with cloud.running_fabric(
        server,
        tmp_path_factory.mktemp("fabric"),
        HOSTS,
        firewall_driver=FIREWALL,
        physical_interface=PHYSICAL_INTERFACE,
        l3_driver="namespace",
    ) as fab:
        for host in HOSTS:
            _wait_alive(server, host, "Netagent agent")
            _wait_alive(server, host, "L3 agent")
        yield fab


@contextlib.contextmanager
def dhcp_agent(
    server: neutron_server.NeutronServer, fabric: cloud.InteropFabric
) -> Iterator[dhcp.DhcpAgent]:
    """The stock DHCP agent on :data:`DHCP_HOST`, without metadata proxies (tempest's
    networks need none: one haproxy per network would only cost time)."""
    agent = dhcp.DhcpAgent(server, fabric.hosts[DHCP_HOST], isolated_metadata=False)
    try:
        agent.start()
        _wait_alive(server, DHCP_HOST, "DHCP agent")
        yield agent
    finally:
        print(agent.log_tail())
        agent.close()
        if not os.environ.get("NETAGENT_INTEROP_KEEP"):
            agent.remove_files()


@pytest.fixture(scope="module")
def public_network(server: neutron_server.NeutronServer) -> str:
    """A flat external network on ``physnet1`` (no DHCP); its id."""
    api = server.api()
    network = api.create(
        "network",
        name="public",
        **{
            "router:external": True,
            "provider:network_type": "flat",
            "provider:physical_network": neutron_server.PHYSNET,
        },
    )
    api.create(
        "subnet", network_id=network["id"], cidr=EXTERNAL_CIDR, ip_version=4, enable_dhcp=False
    )
    return str(network["id"])


def _run(tempest: tempest_run.Tempest, selection: tempest_run.Selection) -> None:
    selected = tempest.list_tests(selection)
    result = tempest.run(selection)
    print(f"\ntempest {selection.name}: {len(selected)} tests selected, {result.totals}")
    for test_id, reason in result.skipped():
        print(f"tempest skipped {test_id}: {reason}")
    summary = result.output[-6000:]
    assert result.returncode == 0, summary
    assert result.totals["failed"] == 0, summary
    assert result.totals["passed"] >= selection.min_passed, summary


def test_tempest_selection_passes(
    server: neutron_server.NeutronServer,
    fabric: cloud.InteropFabric,
    public_network: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tempest = tempest_run.Tempest(
        tmp_path_factory.mktemp("tempest"),
        server,
        list(HOSTS),
        FIREWALL,
        neutron_server.PHYSNET,
        public_network,
    )
    tempest.prepare()
    _run(tempest, tempest_run.MAIN)
    neutron_server.wait_until(
        "the agents to remove the routers tempest deleted",
        lambda: not fabric.router_namespaces(),
        timeout=30,
        interval=0.5,
    )
    with dhcp_agent(server, fabric):
        _run(tempest, tempest_run.WITH_DHCP_AGENT)

"""Tempest (47.0.0, with neutron-tempest-plugin 3.3.0 and netagent's own plugin) against
the tier's Keystone and Neutron, with two real netagent agents (iptables firewall, nft;
a veth ``eth-phys`` in each host mapped to ``physnet1``).

One test: ``tempest run`` of :data:`tests.interop.tempest_run.SELECTION` at concurrency 2
must pass with no failure. The counts are printed; the whole output is in the test's tmp
dir (``tempest-run.log``, ``workspace/logs/tempest.log``) and its tail in the report.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop import cloud, neutron_server, tempest_run

HOSTS = {"tempest-a": "198.18.0.11", "tempest-b": "198.18.0.12"}
FIREWALL = "iptables"
PHYSICAL_INTERFACE = "eth-phys"


@pytest.fixture(scope="module")
def fabric(
    neutron: neutron_server.NeutronServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[cloud.InteropFabric]:
    with cloud.running_fabric(
        neutron,
        tmp_path_factory.mktemp("fabric"),
        HOSTS,
        firewall_driver=FIREWALL,
        physical_interface=PHYSICAL_INTERFACE,
    ) as fab:
        api = neutron.api()
        for host in HOSTS:
            neutron_server.wait_until(
                f"the agent on {host} alive",
                lambda host=host: any(a["alive"] for a in api.agents(host=host)),
                timeout=60,
                interval=0.5,
            )
        yield fab


def test_tempest_selection_passes(
    neutron: neutron_server.NeutronServer,
    fabric: cloud.InteropFabric,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tempest = tempest_run.Tempest(
        tmp_path_factory.mktemp("tempest"), neutron, list(HOSTS), FIREWALL, neutron_server.PHYSNET
    )
    tempest.prepare()
    selected = tempest.list_tests()
    result = tempest.run()
    print(f"\ntempest: {len(selected)} tests selected, {result.totals}")
    for test_id, reason in result.skipped():
        print(f"tempest skipped {test_id}: {reason}")
    summary = result.output[-6000:]
    assert result.returncode == 0, summary
    assert result.totals["failed"] == 0, summary
    assert result.totals["passed"] >= tempest_run.MIN_PASSED, summary

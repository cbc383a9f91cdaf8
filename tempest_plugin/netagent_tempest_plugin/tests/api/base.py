"""Base class of the plugin's API tests: admin clients and cleaned-up resources."""

import netaddr
import tempest.test
from tempest import config
from tempest.lib.common.utils import data_utils, test_utils

CONF = config.CONF


class NetagentAdminTest(tempest.test.BaseTestCase):
    """Talks to Neutron as admin (agents and port bindings are admin-only)."""

    credentials = ["primary", "admin"]

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.neutron:
            raise cls.skipException("Neutron is not available")
        if not CONF.service_available.netagent:
            raise cls.skipException("netagent is not available ([service_available] netagent)")

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.agents_client = cls.os_admin.network_agents_client
        cls.networks_client = cls.os_admin.networks_client
        cls.subnets_client = cls.os_admin.subnets_client
        cls.ports_client = cls.os_admin.ports_client

    # -- agents ---------------------------------------------------------------------

    @classmethod
    def netagent_agents(cls):
        """Every agent of [netagent] agent_type."""
        return cls.agents_client.list_agents(agent_type=CONF.netagent.agent_type)["agents"]

    @classmethod
    def netagent_hosts(cls):
        """[netagent] hosts, or the hosts of the live netagent agents when unset."""
        if CONF.netagent.hosts:
            return list(CONF.netagent.hosts)
        return sorted(a["host"] for a in cls.netagent_agents() if a["alive"])

    def live_agent(self):
        """The agent of the first netagent host; the test fails if there is none."""
        hosts = self.netagent_hosts()
        self.assertNotEmpty(hosts, "no live netagent agent")
        agents = self.agents_client.list_agents(
            agent_type=CONF.netagent.agent_type, host=hosts[0]
        )["agents"]
        self.assertEqual(1, len(agents), f"netagent agents on {hosts[0]}: {agents}")
        return agents[0]

    # -- networks and ports ---------------------------------------------------------

    def create_network(self, **kwargs):
        network = self.networks_client.create_network(
            name=data_utils.rand_name("netagent-net"), **kwargs
        )["network"]
        self.addCleanup(
            test_utils.call_and_ignore_notfound_exc,
            self.networks_client.delete_network,
            network["id"],
        )
        cidr = next(
            netaddr.IPNetwork(CONF.network.project_network_cidr).subnet(
                CONF.network.project_network_mask_bits
            )
        )
        subnet = self.subnets_client.create_subnet(
            network_id=network["id"], cidr=str(cidr), ip_version=4, enable_dhcp=False
        )["subnet"]
        self.addCleanup(
            test_utils.call_and_ignore_notfound_exc,
            self.subnets_client.delete_subnet,
            subnet["id"],
        )
        return network

    def create_port(self, network, host, **kwargs):
        """A compute port on ``network`` with ``binding:host_id`` = ``host``."""
        port = self.ports_client.create_port(
            network_id=network["id"],
            name=data_utils.rand_name("netagent-port"),
            device_owner="compute:netagent-tempest",
            device_id=data_utils.rand_uuid(),
            **{"binding:host_id": host},
            **kwargs,
        )["port"]
        self.addCleanup(
            test_utils.call_and_ignore_notfound_exc, self.ports_client.delete_port, port["id"]
        )
        return port

    def assert_bound_by_netagent(self, port, agent):
        """``port`` bound by netagent's mechanism driver, vif_details as ``agent`` reports."""
        self.assertEqual(CONF.netagent.vif_type, port["binding:vif_type"], port)
        details = port["binding:vif_details"]
        self.assertEqual({"0": "netagent"}, details.get("bound_drivers"), details)
        self.assertEqual("l2", details.get("connectivity"), details)
        reported = agent["configurations"].get("firewall_driver") or "noop"
        self.assertEqual(reported not in ("noop", "none"), details.get("port_filter"), details)
        if CONF.netagent.firewall_driver:
            self.assertEqual(
                CONF.netagent.firewall_driver not in ("noop", "none"), details["port_filter"]
            )

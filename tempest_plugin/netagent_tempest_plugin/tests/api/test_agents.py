"""netagent agents as Neutron's agent API shows them."""

from tempest import config
from tempest.lib import decorators
from tempest.lib.common.utils import test_utils

from netagent_tempest_plugin.tests.api import base

CONF = config.CONF


class NetagentAgentsTest(base.NetagentAdminTest):
    @decorators.idempotent_id("2785410b-a502-4988-9f6a-cca6ec1d89e5")
    def test_agents_listed_and_alive_with_configurations(self):
        agents = self.netagent_agents()
        self.assertNotEmpty(agents, f"no agent of type {CONF.netagent.agent_type!r}")
        by_host = {}
        for agent in agents:
            self.assertNotIn(agent["host"], by_host, "two netagent agents on one host")
            by_host[agent["host"]] = agent
        for host in self.netagent_hosts():
            self.assertIn(host, by_host, f"no netagent agent on {host}")
            agent = by_host[host]
            self.assertTrue(agent["alive"], agent)
            self.assertEqual(CONF.netagent.binary, agent["binary"])
            confs = agent["configurations"]
            self.assertIsInstance(confs.get("interface_mappings"), dict, confs)
            self.assertIsInstance(confs.get("bridge_mappings"), dict, confs)
            self.assertIsInstance(confs.get("devices"), int, confs)
            for tunnel_type in CONF.netagent.tunnel_types:
                self.assertIn(tunnel_type, confs.get("tunnel_types", []), confs)
            if CONF.netagent.tunnel_types:
                self.assertTrue(confs.get("tunneling_ip"), confs)
            if CONF.netagent.physical_network:
                self.assertIn(CONF.netagent.physical_network, confs["interface_mappings"])
            if CONF.netagent.firewall_driver:
                self.assertEqual(CONF.netagent.firewall_driver, confs.get("firewall_driver"))

    @decorators.idempotent_id("1c8aa3ec-4ac5-40a5-a753-ea1476d15fd3")
    def test_show_agent_matches_list(self):
        listed = self.live_agent()
        shown = self.agents_client.show_agent(listed["id"])["agent"]
        for key in ("agent_type", "binary", "host", "topic", "configurations", "alive"):
            self.assertEqual(listed[key], shown[key], key)

    @decorators.idempotent_id("2465705e-ac3d-4e81-b286-d4e05f68fea9")
    def test_admin_state_down_survives_the_agents_reports(self):
        """admin_state_up is the operator's: the agent keeps reporting (alive) without
        resetting it, and it comes back up when the operator says so."""
        agent = self.live_agent()
        self.assertTrue(agent["admin_state_up"])
        self.addCleanup(
            self.agents_client.update_agent, agent["id"], agent={"admin_state_up": True}
        )
        updated = self.agents_client.update_agent(agent["id"], agent={"admin_state_up": False})
        self.assertFalse(updated["agent"]["admin_state_up"])

        def reported_again():
            shown = self.agents_client.show_agent(agent["id"])["agent"]
            return shown["heartbeat_timestamp"] != updated["agent"]["heartbeat_timestamp"]

        self.assertTrue(
            test_utils.call_until_true(
                reported_again, CONF.network.build_timeout, CONF.network.build_interval
            ),
            "the agent sent no state report",
        )
        shown = self.agents_client.show_agent(agent["id"])["agent"]
        self.assertFalse(shown["admin_state_up"])
        self.assertTrue(shown["alive"])
        restored = self.agents_client.update_agent(agent["id"], agent={"admin_state_up": True})
        self.assertTrue(restored["agent"]["admin_state_up"])

    @decorators.idempotent_id("60f30f19-d0a9-4f49-b3bb-cc1d108540a7")
    def test_ports_still_bind_on_an_admin_down_agent(self):
        """ML2 binds to live agents regardless of admin_state_up (it only steers
        scheduling), so taking netagent down administratively does not strand new ports."""
        agent = self.live_agent()
        self.addCleanup(
            self.agents_client.update_agent, agent["id"], agent={"admin_state_up": True}
        )
        self.agents_client.update_agent(agent["id"], agent={"admin_state_up": False})
        network = self.create_network()
        port = self.create_port(network, agent["host"])
        self.assert_bound_by_netagent(port, agent)

"""netagent as Neutron's L3 agent: routers scheduled to a netagent host are built there.

A host whose netagent runs ``[agent] l3_driver = namespace`` reports a second identity, an
"L3 agent" (legacy mode, interface driver ``netagent``). The server schedules routers to it
like to neutron-l3-agent; the router's ports get bound to that host by netagent's mechanism
driver and go ACTIVE once the agent has built the router and wired its ports.
"""

from tempest import config
from tempest.lib import decorators
from tempest.lib.common.utils import data_utils, test_utils

from netagent_tempest_plugin.tests.api import base

CONF = config.CONF

L3_AGENT_TYPE = "L3 agent"


class NetagentL3AgentTest(base.NetagentAdminTest):
    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.netagent.l3_hosts:
            raise cls.skipException("no netagent L3 agent configured ([netagent] l3_hosts)")
        extensions = CONF.network_feature_enabled.api_extensions
        for alias in ("router", "l3_agent_scheduler"):
            if alias not in extensions and "all" not in extensions:
                raise cls.skipException(f"network extension {alias} is not enabled")

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.routers_client = cls.os_admin.routers_client

    # -- helpers --------------------------------------------------------------------

    def l3_agent(self, host):
        """The one L3 agent of ``host``."""
        agents = self.agents_client.list_agents(agent_type=L3_AGENT_TYPE, host=host)["agents"]
        self.assertEqual(1, len(agents), f"L3 agents on {host}: {agents}")
        return agents[0]

    def l2_agent(self, host):
        (agent,) = self.agents_client.list_agents(agent_type=CONF.netagent.agent_type, host=host)[
            "agents"
        ]
        return agent

    def create_router(self, **kwargs):
        router = self.routers_client.create_router(
            name=data_utils.rand_name("netagent-router"), **kwargs
        )["router"]
        self.addCleanup(
            test_utils.call_and_ignore_notfound_exc,
            self.routers_client.delete_router,
            router["id"],
        )
        return router

    def router_with_interface(self, **kwargs):
        """A router with one interface on a new network; (router, interface port id)."""
        network = self.create_network()
        (subnet,) = self.subnets_client.list_subnets(network_id=network["id"])["subnets"]
        router = self.create_router(**kwargs)
        interface = self.routers_client.add_router_interface(router["id"], subnet_id=subnet["id"])
        self.addCleanup(
            test_utils.call_and_ignore_notfound_exc,
            self.routers_client.remove_router_interface,
            router["id"],
            subnet_id=subnet["id"],
        )
        return router, interface["port_id"]

    def schedule(self, router_id, agent):
        """Host ``router_id`` on ``agent`` only (as an operator moves a router)."""
        hosting = self.routers_client.list_l3_agents_hosting_router(router_id)["agents"]
        for other in hosting:
            if other["id"] != agent["id"]:
                self.agents_client.delete_router_from_l3_agent(other["id"], router_id)
        if agent["id"] not in [a["id"] for a in hosting]:
            self.agents_client.create_router_on_l3_agent(agent["id"], router_id=router_id)
        hosting = self.routers_client.list_l3_agents_hosting_router(router_id)["agents"]
        self.assertEqual([agent["id"]], [a["id"] for a in hosting])

    def wait_port_active_on(self, port_id, host):
        """``port_id`` bound to ``host`` by netagent and ACTIVE (the agent built the router
        and wired the port) within ``[network] build_timeout``; returns the port."""
        seen = {}

        def active_there():
            seen["port"] = self.ports_client.show_port(port_id)["port"]
            port = seen["port"]
            return port["binding:host_id"] == host and port["status"] == "ACTIVE"

        self.assertTrue(
            test_utils.call_until_true(
                active_there, CONF.network.build_timeout, CONF.network.build_interval
            ),
            f"router port not ACTIVE on {host}: {seen.get('port')}",
        )
        self.assert_bound_by_netagent(seen["port"], self.l2_agent(host))
        return seen["port"]

    # -- tests ----------------------------------------------------------------------

    @decorators.idempotent_id("77f0ce85-64b5-40e4-833f-5a6f17652224")
    def test_l3_agents_alive_with_netagent_configuration(self):
        for host in CONF.netagent.l3_hosts:
            agent = self.l3_agent(host)
            self.assertTrue(agent["alive"], agent)
            self.assertEqual("neutron-l3-agent", agent["binary"])
            self.assertEqual("l3_agent", agent["topic"])
            confs = agent["configurations"]
            self.assertEqual("legacy", confs.get("agent_mode"), confs)
            self.assertEqual("netagent", confs.get("interface_driver"), confs)
            # one process, two identities: the same host runs a live netagent L2 agent
            self.assertTrue(self.l2_agent(host)["alive"])

    @decorators.idempotent_id("c3b4447d-26a2-4373-9ab2-acb3cf3385fd")
    def test_router_hosted_by_each_netagent_l3_agent(self):
        for host in CONF.netagent.l3_hosts:
            agent = self.l3_agent(host)
            router, port_id = self.router_with_interface()
            self.schedule(router["id"], agent)
            on_agent = self.agents_client.list_routers_on_l3_agent(agent["id"])["routers"]
            self.assertIn(router["id"], [r["id"] for r in on_agent])
            port = self.wait_port_active_on(port_id, host)
            self.assertEqual("network:router_interface", port["device_owner"])

            def reports_routers(agent_id=agent["id"]):
                confs = self.agents_client.show_agent(agent_id)["agent"]["configurations"]
                return confs.get("routers", 0) >= 1 and confs.get("interfaces", 0) >= 1

            self.assertTrue(
                test_utils.call_until_true(
                    reports_routers, CONF.network.build_timeout, CONF.network.build_interval
                ),
                f"the L3 agent on {host} does not report the router it hosts",
            )

    @decorators.idempotent_id("335e7c7a-4f23-41bf-8e1f-26eb473f9708")
    def test_router_moves_between_netagent_l3_agents(self):
        if len(CONF.netagent.l3_hosts) < 2:
            raise self.skipException("needs two netagent L3 agents ([netagent] l3_hosts)")
        first, second = CONF.netagent.l3_hosts[:2]
        router, port_id = self.router_with_interface()
        self.schedule(router["id"], self.l3_agent(first))
        self.wait_port_active_on(port_id, first)
        second_agent = self.l3_agent(second)
        self.schedule(router["id"], second_agent)
        self.wait_port_active_on(port_id, second)
        on_first = self.agents_client.list_routers_on_l3_agent(self.l3_agent(first)["id"])
        self.assertNotIn(router["id"], [r["id"] for r in on_first["routers"]])

    @decorators.idempotent_id("9ffb9611-ed93-482f-a997-9c9599229c86")
    def test_router_gateway_on_the_external_network(self):
        if not CONF.network.public_network_id:
            raise self.skipException("[network] public_network_id is not set")
        host = CONF.netagent.l3_hosts[0]
        router, port_id = self.router_with_interface(
            external_gateway_info={"network_id": CONF.network.public_network_id}
        )
        self.schedule(router["id"], self.l3_agent(host))
        self.wait_port_active_on(port_id, host)
        (gateway,) = self.ports_client.list_ports(
            device_id=router["id"], device_owner="network:router_gateway"
        )["ports"]
        gateway = self.wait_port_active_on(gateway["id"], host)
        self.assertEqual(CONF.network.public_network_id, gateway["network_id"])
        shown = self.routers_client.show_router(router["id"])["router"]
        addresses = [ip["ip_address"] for ip in gateway["fixed_ips"]]
        external = shown["external_gateway_info"]["external_fixed_ips"]
        self.assertEqual(addresses, [ip["ip_address"] for ip in external])

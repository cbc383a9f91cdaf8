"""Port binding by netagent's ML2 mechanism driver."""

from tempest import config
from tempest.lib import decorators
from tempest.lib.common.utils import data_utils

from netagent_tempest_plugin.tests.api import base

CONF = config.CONF


class NetagentPortBindingTest(base.NetagentAdminTest):
    @decorators.idempotent_id("16192f81-9963-4311-814c-a7066ed268d3")
    def test_port_on_netagent_host_is_bound(self):
        agent = self.live_agent()
        network = self.create_network()
        port = self.create_port(network, agent["host"])
        self.assert_bound_by_netagent(port, agent)
        self.assertEqual(agent["host"], port["binding:host_id"])
        # the binding is what the API shows afterwards, not only in the create reply
        shown = self.ports_client.show_port(port["id"])["port"]
        self.assertEqual(port["binding:vif_details"], shown["binding:vif_details"])

    @decorators.idempotent_id("fae54bf7-e760-4563-987c-3764be1a32cc")
    def test_every_netagent_host_binds(self):
        hosts = self.netagent_hosts()
        self.assertNotEmpty(hosts, "no live netagent agent")
        network = self.create_network()
        for host in hosts:
            (agent,) = self.agents_client.list_agents(
                agent_type=CONF.netagent.agent_type, host=host
            )["agents"]
            self.assert_bound_by_netagent(self.create_port(network, host), agent)

    @decorators.idempotent_id("ee3d5d18-4381-4204-ac6a-df74902ffb32")
    def test_binding_fails_cleanly_for_a_host_without_netagent(self):
        network = self.create_network()
        host = data_utils.rand_name("netagent-no-agent")
        port = self.create_port(network, host)
        self.assertEqual("binding_failed", port["binding:vif_type"])
        self.assertEqual({}, port["binding:vif_details"])
        # the port is still there and can be rebound to a live netagent host
        agent = self.live_agent()
        rebound = self.ports_client.update_port(port["id"], **{"binding:host_id": agent["host"]})
        self.assert_bound_by_netagent(rebound["port"], agent)

    @decorators.idempotent_id("53a5e6ca-e681-460d-ab4c-9645e7e78f21")
    def test_flat_port_binds_on_the_physical_network(self):
        if not CONF.netagent.physical_network:
            raise self.skipException("[netagent] physical_network is not set")
        agent = self.live_agent()
        flat = {
            "provider:network_type": "flat",
            "provider:physical_network": CONF.netagent.physical_network,
        }
        # a physical network carries one flat network: the cloud's (e.g. the external
        # network) if it has one
        existing = self.networks_client.list_networks(**flat)["networks"]
        network = existing[0] if existing else self.create_network(**flat)
        self.assert_bound_by_netagent(self.create_port(network, agent["host"]), agent)

    @decorators.idempotent_id("6ac00673-dd79-4e3a-aa6b-e10a562a7c71")
    def test_unbinding_and_rebinding(self):
        agent = self.live_agent()
        network = self.create_network()
        port = self.create_port(network, agent["host"])
        unbound = self.ports_client.update_port(port["id"], **{"binding:host_id": ""})["port"]
        self.assertEqual("unbound", unbound["binding:vif_type"])
        rebound = self.ports_client.update_port(port["id"], **{"binding:host_id": agent["host"]})
        self.assert_bound_by_netagent(rebound["port"], agent)

"""Servers on netagent hosts: connectivity, security groups and floating IPs.

These boot servers through Nova, log in over SSH through a floating IP and test from
inside, with tempest's scenario helpers. They need a real cloud (e.g. devstack with this
plugin) and skip with the reason when compute, validation or a public network is missing.
"""

from tempest import config
from tempest.lib import decorators
from tempest.scenario import manager

CONF = config.CONF


class NetagentConnectivityTest(manager.NetworkScenarioTest):
    credentials = ["primary", "admin"]

    @classmethod
    def skip_checks(cls):
        super().skip_checks()
        if not CONF.service_available.netagent:
            raise cls.skipException("netagent is not available ([service_available] netagent)")
        if not CONF.service_available.nova:
            raise cls.skipException(
                "netagent scenario tests boot servers: compute is not available "
                "([service_available] nova = false)"
            )
        if not CONF.validation.run_validation:
            raise cls.skipException(
                "netagent scenario tests log in to servers: [validation] run_validation is false"
            )
        if not CONF.network.public_network_id:
            raise cls.skipException(
                "netagent scenario tests reach servers through floating IPs: "
                "[network] public_network_id is not set"
            )

    @classmethod
    def setup_clients(cls):
        super().setup_clients()
        cls.admin_agents_client = cls.os_admin.network_agents_client
        cls.admin_ports_client = cls.os_admin.ports_client

    def setUp(self):
        super().setUp()
        self.keypair = self.create_keypair()
        self.secgroup = self.create_security_group()  # SSH and ICMP in
        self.network, self.subnet, self.router = self.setup_network_subnet_with_router()

    def _server(self, security_groups=None):
        server = self.create_server(
            networks=[{"uuid": self.network["id"]}],
            key_name=self.keypair["name"],
            security_groups=security_groups or [{"name": self.secgroup["name"]}],
        )
        port_id, fixed_ip = self.get_server_port_id_and_ip4(server)
        return server, port_id, fixed_ip

    def _assert_on_netagent_host(self, port_id):
        port = self.admin_ports_client.show_port(port_id)["port"]
        self.assertEqual(CONF.netagent.vif_type, port["binding:vif_type"], port)
        self.assertEqual({"0": "netagent"}, port["binding:vif_details"].get("bound_drivers"))
        agents = self.admin_agents_client.list_agents(
            agent_type=CONF.netagent.agent_type, host=port["binding:host_id"]
        )["agents"]
        self.assertEqual(1, len(agents), f"no netagent agent on {port['binding:host_id']}")
        self.assertTrue(agents[0]["alive"])

    def _login(self, server):
        fip = self.create_floating_ip(server)
        return self.get_remote_client(
            fip["floating_ip_address"], private_key=self.keypair["private_key"], server=server
        )

    @decorators.idempotent_id("dc28532f-cc8d-4b7d-ae34-113fa3b481f8")
    def test_servers_on_netagent_hosts_reach_each_other(self):
        """Two servers (on whichever netagent hosts Nova picks) ping each other's fixed
        IPs; the first is reached over SSH through a floating IP."""
        first, first_port, _ = self._server()
        _, second_port, second_ip = self._server()
        self._assert_on_netagent_host(first_port)
        self._assert_on_netagent_host(second_port)
        ssh = self._login(first)
        self.check_remote_connectivity(ssh, second_ip, should_succeed=True)

    @decorators.idempotent_id("a40c98bb-4f12-42e2-ad6b-2c27f685a18a")
    def test_security_group_rule_opens_and_closes_icmp(self):
        """ICMP to a server whose group allows only SSH is dropped by netagent's firewall;
        an ICMP rule lets it through; deleting the rule drops it again."""
        if CONF.netagent.firewall_driver in ("noop", "none"):
            raise self.skipException("[netagent] firewall_driver is noop: ports are unfiltered")
        client, _, _ = self._server()
        ssh_only = self.create_empty_security_group()
        self.create_security_group_rule(
            secgroup=ssh_only,
            direction="ingress",
            protocol="tcp",
            port_range_min=22,
            port_range_max=22,
        )
        _, target_port, target_ip = self._server(security_groups=[{"name": ssh_only["name"]}])
        self._assert_on_netagent_host(target_port)
        ssh = self._login(client)
        self.check_remote_connectivity(ssh, target_ip, should_succeed=False)
        rule = self.create_security_group_rule(
            secgroup=ssh_only, direction="ingress", protocol="icmp"
        )
        self.check_remote_connectivity(ssh, target_ip, should_succeed=True)
        self.security_group_rules_client.delete_security_group_rule(rule["id"])
        self.check_remote_connectivity(ssh, target_ip, should_succeed=False)

    @decorators.idempotent_id("db7ddac4-56d0-40be-b126-67864982f545")
    def test_floating_ip_moves_between_servers(self):
        """A floating IP reaches the server it is associated with, on a netagent host."""
        first, first_port, _ = self._server()
        second, second_port, _ = self._server()
        self._assert_on_netagent_host(first_port)
        self._assert_on_netagent_host(second_port)
        fip = self.create_floating_ip(first)
        self.check_vm_connectivity(
            fip["floating_ip_address"],
            private_key=self.keypair["private_key"],
            server=first,
        )
        self.floating_ips_client.update_floatingip(fip["id"], port_id=second_port)
        self.check_vm_connectivity(
            fip["floating_ip_address"],
            private_key=self.keypair["private_key"],
            server=second,
        )

"""A real neutron-server 25.2.3 (the last with the Linux bridge driver) for the takeover test.

Runs ``neutron-server`` (API, RPC and periodic workers in one process tree, eventlet, as
2024.2 deploys it) from the cached Linux bridge venv (:func:`tests.interop.venv.lb_server`:
netagent's Neutron plugin installed editable from this checkout, PyMySQL), on a MariaDB
database and a RabbitMQ vhost of its own (:mod:`tests.interop.services`). ML2 with
``mechanism_drivers = netagent,linuxbridge,l2population`` (the migration's step 1:
hosts with a live Linux bridge agent are bound by ``linuxbridge``, netagent hosts by
``netagent``), type ``vxlan``, iptables firewall on the agents.

``auth_strategy = noauth``: every request is the admin's (Neutron's ``noauth`` pipeline
gives each request an admin context), so this server needs no Keystone. The Keystone of
the tier is 30.0.0 (2026.1); this keeps the takeover test independent of it.
"""

from __future__ import annotations

from pathlib import Path

from tests.interop import neutron_server, services, venv
from tests.interop.api import NeutronApi, NoAuthToken

MECHANISM_DRIVERS = "netagent,linuxbridge,l2population"


class LbNeutronServer(neutron_server.NeutronServer):
    """neutron-server 25.2.3 without Keystone; same stop/diagnostics as the 29 server."""

    def __init__(self, workdir: Path) -> None:
        # no Keystone: the parent's keystone is used only by api() and timing_line()
        super().__init__(workdir, keystone=None)  # type: ignore[arg-type]
        self.workdir.mkdir(parents=True, exist_ok=True)

    def api(self) -> NeutronApi:
        return NeutronApi(self.url, NoAuthToken())

    def timing_line(self) -> str:
        return "lb server timings: " + ", ".join(f"{k} {v}s" for k, v in self.timings.items())

    def start(self) -> None:
        with services.phase(self.timings, "venv"):
            self.venv, built = venv.lb_server()
            self.timings["venv_built"] = float(built)
        with services.phase(self.timings, "db+vhost"):
            self._created_services = True
            self.services.create()
        with services.phase(self.timings, "config"):
            self.port = neutron_server.free_port()
            self._write_config()
        with services.phase(self.timings, "db-manage"):
            self._run_tool(
                "db-manage",
                [self._bin("neutron-db-manage"), *self._config_args(), "upgrade", "heads"],
            )
        with services.phase(self.timings, "start"):
            self._spawn("api", [self._bin("neutron-server"), *self._config_args()])
            neutron_server.wait_until("the Neutron API", self._api_answers, timeout=180)
            neutron_server.wait_until(
                "neutron-server consuming q-reports-plugin",
                lambda: self.services.queue_consumers().get("q-reports-plugin", 0) > 0,
                timeout=90,
                interval=0.5,
            )

    def _write_config(self) -> None:
        assert self.venv is not None
        state = self.workdir / "neutron-state"
        (state / "lock").mkdir(parents=True, exist_ok=True)
        (self.workdir / "neutron.conf").write_text(
            f"""[DEFAULT]
core_plugin = ml2
service_plugins =
auth_strategy = noauth
api_paste_config = {self.venv / "etc" / "neutron" / "api-paste.ini"}
bind_host = 127.0.0.1
bind_port = {self.port}
transport_url = {self.services.transport_url}
host = interop-lb-server
state_path = {state}
debug = true
agent_down_time = {neutron_server.AGENT_DOWN_TIME}
rpc_workers = 1
rpc_state_report_workers = 1
api_workers = 1
graceful_shutdown_timeout = 5
dhcp_agent_notification = false
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false

[experimental]
# 2024.2 marks the Linux bridge driver experimental (refused unless enabled)
linuxbridge = true

[agent]
report_interval = {neutron_server.AGENT_REPORT_INTERVAL}

[database]
connection = {self.services.db_url}

[oslo_concurrency]
lock_path = {state / "lock"}
"""
        )
        (self.workdir / "ml2_conf.ini").write_text(
            f"""[ml2]
type_drivers = vxlan
tenant_network_types = vxlan
mechanism_drivers = {MECHANISM_DRIVERS}
extension_drivers = port_security

[ml2_type_vxlan]
vni_ranges = {neutron_server.VNI_RANGE}

[securitygroup]
firewall_driver = iptables
enable_ipset = true
"""
        )

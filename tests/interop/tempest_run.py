"""Tempest against the interop tier's Keystone + Neutron + netagent agents.

:class:`Tempest` takes tempest and neutron-tempest-plugin from their cached venv
(:func:`tests.interop.venv.tempest`), builds this checkout's ``tempest_plugin/`` distribution
into a directory of the run's own that goes on ``PYTHONPATH`` (so the plugin is found through
its real ``tempest.test_plugins`` entry point without installing anything from a checkout
into the shared venv), makes a workspace with ``tempest init --workspace-path`` (nothing in
``$HOME``), writes ``etc/tempest.conf`` and runs ``tempest run`` on a :class:`Selection`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.interop import keystone_server, venv
from tests.interop.neutron_server import AGENT_REPORT_INTERVAL, NeutronServer

PLUGIN_SOURCE = venv.REPO / "tempest_plugin"

#: What ``tempest run`` runs (regexes, one per line of its include list; a test runs when
#: one of them matches its id). Kept to what netagent takes part in and what fits the CI
#: budget: netagent's own API tests, agent management, port binding, ports, networks,
#: security groups, allowed address pairs, revisions, routers (legacy: netagent's L3
#: driver builds neither DVR nor HA routers), L3 and DHCP agent scheduling.
#: doc/interop.md lists the count.
SELECTION: tuple[str, ...] = (
    # netagent's plugin: agents, binding, admin_state_up, routers on netagent L3 agents
    # (scenario tests skip: no Nova)
    r"^netagent_tempest_plugin\.tests\.",
    # agent management
    r"^neutron_tempest_plugin\.api\.admin\.test_agent_management\.",
    # port binding and ports
    r"^neutron_tempest_plugin\.api\.admin\.test_ports\.PortTestCasesAdmin\.",
    r"^tempest\.api\.network\.admin\.test_ports\.",
    r"^tempest\.api\.network\.test_ports\.PortsTestJSON\.",
    r"^neutron_tempest_plugin\.api\.test_ports\.PortsTestJSON\.",
    r"^neutron_tempest_plugin\.api\.test_ports_negative\.",
    # networks
    r"^tempest\.api\.network\.test_networks\.NetworksTest\.",
    r"^tempest\.api\.network\.test_networks\.BulkNetworkOps",
    r"^tempest\.api\.network\.test_networks_negative\.",
    r"^neutron_tempest_plugin\.api\.test_networks\.NetworksTestJSON\.",
    r"^neutron_tempest_plugin\.api\.test_networks\.NetworksMtuTestJSON\.",
    r"^tempest\.api\.network\.test_extensions\.",
    # security groups (stateful: what netagent's iptables driver enforces) and port security
    r"^tempest\.api\.network\.test_security_groups\.",
    r"^tempest\.api\.network\.test_security_groups_negative\.",
    r"^neutron_tempest_plugin\.api\.test_security_groups\.StatefulSecGroup",
    r"^neutron_tempest_plugin\.api\.test_security_groups\.SecGroupNormalizedCidrTest\.",
    r"^neutron_tempest_plugin\.api\.test_security_groups_negative\.NegativeSecGroupTest\.",
    r"^neutron_tempest_plugin\.api\.test_security_groups_negative\.NegativeSecGroupIPv6Test\.",
    r"^neutron_tempest_plugin\.api\.test_security_groups_negative\.NegativeSecGroupProtocolTest\.",
    r"^neutron_tempest_plugin\.api\.test_extension_driver_port_security\.",
    r"^neutron_tempest_plugin\.api\.admin\.test_extension_driver_port_security_admin\.",
    # allowed address pairs
    r"^tempest\.api\.network\.test_allowed_address_pair\.",
    # revisions
    r"^neutron_tempest_plugin\.api\.test_revisions\.",
    # routers (legacy) and their scheduling to netagent's L3 agents; the IPv6 variants of
    # the classes repeat the IPv4 tests on IPv6 subnets: one of them (interface ACTIVE)
    r"^tempest\.api\.network\.test_routers\.RoutersTest\.",
    r"^tempest\.api\.network\.test_routers_negative\.RoutersNegativeTest\.",
    r"^tempest\.api\.network\.admin\.test_routers\.RoutersAdminTest\.",
    r"^tempest\.api\.network\.admin\.test_routers_negative\.RoutersAdminNegativeTest\.",
    r"^neutron_tempest_plugin\.api\.test_routers\.RoutersTest\.",
    r"^neutron_tempest_plugin\.api\.test_routers\.RoutersIpV6Test\.test_router_interface_status",
    r"^neutron_tempest_plugin\.api\.admin\.test_l3_agent_scheduler\.",
)

#: Tests of the selection that need what the tier does not run (``tempest run
#: --exclude-list``), each with the reason.
EXCLUDED: tuple[tuple[str, str], ...] = (
    (
        r"^neutron_tempest_plugin\.api\.test_ports\.PortsTestJSON\.test_port_shut_down",
        "needs a DHCP agent: in DHCP_SELECTION",
    ),
)

#: What runs in a second ``tempest run`` once the stock DHCP agent is up: DHCP agent
#: scheduling, and the test that needs a DHCP port. Not with the rest: with the agent up,
#: every network tempest makes gets a DHCP port, a namespace and a dnsmasq.
DHCP_SELECTION: tuple[str, ...] = (
    r"^tempest\.api\.network\.admin\.test_dhcp_agent_scheduler\.",
    r"^neutron_tempest_plugin\.api\.test_ports\.PortsTestJSON\.test_port_shut_down",
)


@dataclasses.dataclass(frozen=True)
class Selection:
    """One ``tempest run``: include regexes, excluded ones with the reason, and the least
    number of passed tests (fewer means the selection lost tests, e.g. a skip crept in)."""

    name: str
    include: tuple[str, ...]
    min_passed: int
    exclude: tuple[tuple[str, str], ...] = ()


MAIN = Selection("main", SELECTION, 239, EXCLUDED)
WITH_DHCP_AGENT = Selection("dhcp", DHCP_SELECTION, 5)

#: Summary lines of ``tempest run`` (stestr's "Totals").
_TOTALS = {
    "ran": re.compile(r"^Ran: (\d+) tests", re.M),
    "seconds": re.compile(r"^Ran: \d+ tests in (\d+)", re.M),
    "passed": re.compile(r"^ - Passed: (\d+)", re.M),
    "skipped": re.compile(r"^ - Skipped: (\d+)", re.M),
    "failed": re.compile(r"^ - Failed: (\d+)", re.M),
}


_SKIP_LINE = re.compile(r"^\{\d+\} (\S+) .*\.\.\. SKIPPED: (.*)$", re.M)


@dataclasses.dataclass
class Result:
    returncode: int
    output: str
    totals: dict[str, int]

    def skipped(self) -> list[tuple[str, str]]:
        """(test id, reason) of every skipped test."""
        return _SKIP_LINE.findall(self.output)


class Tempest:
    """A tempest workspace in ``workdir`` for ``neutron`` (in the catalog of its Keystone,
    in region ``neutron.region``).

    :param hosts: the netagent hosts; all of them also run netagent's L3 agent.
    :param public_network_id: the external network routers get their gateway on.
    """

    def __init__(
        self,
        workdir: Path,
        neutron: NeutronServer,
        hosts: Sequence[str],
        firewall_driver: str,
        physical_network: str,
        public_network_id: str,
    ) -> None:
        assert neutron.region is not None, "tempest finds Neutron through the catalog"
        self.workdir = workdir
        self.neutron = neutron
        self.hosts = list(hosts)
        self.firewall_driver = firewall_driver
        self.physical_network = physical_network
        self.public_network_id = public_network_id
        self.venv: Path | None = None
        self.workspace = workdir / "workspace"
        self.plugin_site = workdir / "plugin-site"

    def _bin(self, name: str) -> str:
        assert self.venv is not None
        return str(self.venv / "bin" / name)

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.plugin_site), "HOME": str(self.workdir)}

    def _run(self, cmd: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=cwd,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}"
                f"\n{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def prepare(self) -> None:
        """Venv, plugin build, workspace and tempest.conf."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.venv, _ = venv.tempest()
        self._run(
            [
                self._bin("pip"),
                "install",
                *venv.PIP_QUIET,
                "--no-deps",
                "--no-build-isolation",
                "--target",
                str(self.plugin_site),
                str(PLUGIN_SOURCE),
            ]
        )
        self._run(
            [
                self._bin("tempest"),
                "init",
                "--workspace-path",
                str(self.workdir / "workspaces.yaml"),
                "--name",
                "netagent-interop",
                str(self.workspace),
            ]
        )
        (self.workspace / "etc" / "tempest.conf").write_text(self.config())

    def extensions(self) -> list[str]:
        """Aliases of the API extensions the server really has."""
        found = self.neutron.api().get("/v2.0/extensions")["extensions"]
        return sorted(e["alias"] for e in found)

    def config(self) -> str:
        ks = self.neutron.keystone
        admin = ks.admin_credentials
        no_service = ("nova", "glance", "cinder", "swift", "horizon", "placement")
        unavailable = "".join(f"{name} = false\n" for name in no_service)
        return f"""[DEFAULT]
log_dir = {self.workspace / "logs"}
log_file = tempest.log
debug = true

[auth]
use_dynamic_credentials = true
create_isolated_networks = false
admin_username = {admin.username}
admin_password = {admin.password}
admin_project_name = {admin.project_name}
admin_domain_name = Default

[identity]
uri_v3 = {ks.auth_url}
auth_version = v3
region = {keystone_server.REGION}

[identity-feature-enabled]
api_v2 = false

[service_available]
neutron = true
netagent = true
{unavailable}
[network]
region = {self.neutron.region}
public_network_id = {self.public_network_id}
project_network_cidr = 203.0.113.0/24
project_network_mask_bits = 28
project_network_v6_cidr = fd00:4e41::/48
project_network_v6_mask_bits = 64
shared_physical_network = false
build_timeout = {max(60, 10 * AGENT_REPORT_INTERVAL)}
build_interval = 1

[network-feature-enabled]
api_extensions = {",".join(self.extensions())}
ipv6 = true
ipv6_subnet_attributes = true
port_security = true

[validation]
run_validation = false

[neutron_plugin_options]
available_type_drivers = flat,vxlan

[netagent]
hosts = {",".join(self.hosts)}
l3_hosts = {",".join(self.hosts)}
firewall_driver = {self.firewall_driver}
tunnel_types = vxlan
physical_network = {self.physical_network}
"""

    def list_tests(self, selection: Selection) -> list[str]:
        """Test ids of ``selection`` (``tempest run --list-tests``)."""
        out = self._run(
            [self._bin("tempest"), "run", "--list-tests", *self._lists(selection)],
            cwd=self.workspace,
        )
        return [line.strip() for line in out.splitlines() if re.match(r"^\S+\.\S+", line)]

    def run(self, selection: Selection, concurrency: int = 2, timeout: float = 1800) -> Result:
        """``tempest run`` of ``selection``; output in ``workdir/tempest-run-<name>.log``."""
        cmd = [
            self._bin("tempest"),
            "run",
            "--concurrency",
            str(concurrency),
            *self._lists(selection),
        ]
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=self.workspace,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
        output = proc.stdout + proc.stderr
        (self.workdir / f"tempest-run-{selection.name}.log").write_text(output)
        totals = {
            name: int(m.group(1)) if (m := pattern.search(output)) else -1
            for name, pattern in _TOTALS.items()
        }
        return Result(proc.returncode, output, totals)

    def _lists(self, selection: Selection) -> list[str]:
        """``--include-list``/``--exclude-list`` options, their files written."""
        include = self.workdir / f"include-{selection.name}.txt"
        include.write_text("\n".join(selection.include) + "\n")
        exclude = self.workdir / f"exclude-{selection.name}.txt"
        exclude.write_text("".join(f"{regex}  # {why}\n" for regex, why in selection.exclude))
        return ["--include-list", str(include), "--exclude-list", str(exclude)]

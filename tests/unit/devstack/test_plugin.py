"""devstack/ dry run: the plugin sourced as stack.sh sources it, under stand-ins for
devstack's functions (devstack_stubs.sh) that record each call; the tests assert what it
would install, write and run."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from oslo_config import cfg

import netagent.conf

REPO = Path(__file__).resolve().parents[3]
DEVSTACK = REPO / "devstack"
STUBS = Path(__file__).with_name("devstack_stubs.sh")
SAMPLE = REPO / "etc" / "netagent" / "netagent.conf.sample"
BIN = "/opt/stack/data/venv/bin"

#: stackrc's default ENABLED_SERVICES (ML2/OVN)
STACKRC_SERVICES = (
    "key,n-api,n-cpu,n-cond,n-sch,n-novnc,n-api-meta,placement-api,placement-client,g-api,"
    "c-sch,c-api,c-vol,ovn-controller,ovn-northd,ovs-vswitchd,ovsdb-server,q-svc,q-ovn-agent,"
    "horizon,rabbit,tempest,mysql,etcd3,dstat"
)

#: every function lib/neutron and lib/neutron_plugins/services/* call for the L2 agent
HOOKS = (
    "is_neutron_ovs_base_plugin",
    "neutron_plugin_create_nova_conf",
    "neutron_plugin_install_agent_packages",
    "neutron_plugin_configure_dhcp_agent",
    "neutron_plugin_configure_l3_agent",
    "neutron_plugin_configure_plugin_agent",
    "neutron_plugin_setup_interface_driver",
    "neutron_plugin_check_adv_test_requirements",
)


@dataclass
class Run:
    returncode: int
    calls: list[list[str]]
    stdout: str
    stderr: str
    tmp: Path

    def named(self, name: str) -> list[list[str]]:
        return [c[1:] for c in self.calls if c[0] == name]

    def var(self, name: str) -> str:
        """A variable printed by the script's ``dump NAME`` lines."""
        match = re.search(rf"^{name}=(.*)$", self.stdout, re.MULTILINE)
        assert match, f"{name} not dumped:\n{self.stdout}"
        return match.group(1)


def run_devstack(
    tmp: Path, phases: list[str], local_conf: dict[str, str] | None = None, after: str = ""
) -> Run:
    """Source the plugin's files in stack.sh's order, then each ``phases`` entry
    ("stack install", "unstack", ...) as ``source plugin.sh <entry>``, then ``after``."""
    calls = tmp / "calls"
    calls.write_text("")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp),
        "NETAGENT_TEST_CALLS": str(calls),
        # what stackrc and lib/* have set by then
        "DEST": str(tmp / "opt-stack"),
        "DATA_DIR": str(tmp / "data"),
        "STACK_USER": subprocess.run(
            ["id", "-un"], check=True, capture_output=True, text=True
        ).stdout.strip(),
        "HOST_IP": "192.0.2.10",
        "TUNNEL_ENDPOINT_IP": "192.0.2.10",
        "ENABLE_TENANT_TUNNELS": "True",
        "ENABLE_DEBUG_LOG_LEVEL": "True",
        "PHYSICAL_NETWORK": "public",
        "TEMPEST_CONFIG": str(tmp / "tempest.conf"),
        "NEUTRON_CONF": "/etc/neutron/neutron.conf",
        "ENABLED_SERVICES": STACKRC_SERVICES,
        # the plugin's clone is this repository; /etc is the test's tmp dir
        "NETAGENT_DIR": str(REPO),
        "NETAGENT_CONF_DIR": str(tmp / "etc-netagent"),
    }
    env.update(local_conf or {})
    steps = "\n".join(f"source {DEVSTACK}/plugin.sh {phase}" for phase in phases)
    script = f"""
set -o errexit -o pipefail
dump() {{ for v in "$@"; do printf '%s=%s\\n' "$v" "${{!v}}"; done; }}
source {STUBS}
source {DEVSTACK}/override-defaults
devstack_ml2_defaults
source {DEVSTACK}/settings
{steps}
{after}
"""
    proc = subprocess.run(
        ["bash", "-c", script], env=env, cwd=tmp, capture_output=True, text=True, timeout=60
    )
    lines = calls.read_text().splitlines()
    return Run(
        proc.returncode, [line.split("\x1f") for line in lines], proc.stdout, proc.stderr, tmp
    )


def ok(run: Run) -> Run:
    assert run.returncode == 0, run.stderr
    return run


def test_ml2_defaults_come_from_override_defaults(tmp_path: Path) -> None:
    run = ok(
        run_devstack(
            tmp_path,
            [],
            after="dump Q_AGENT Q_ML2_PLUGIN_MECHANISM_DRIVERS Q_ML2_PLUGIN_TYPE_DRIVERS "
            "Q_ML2_TENANT_NETWORK_TYPE",
        )
    )
    assert run.var("Q_AGENT") == "netagent"
    assert run.var("Q_ML2_PLUGIN_MECHANISM_DRIVERS") == "netagent"
    assert run.var("Q_ML2_PLUGIN_TYPE_DRIVERS") == "flat,vxlan"
    assert run.var("Q_ML2_TENANT_NETWORK_TYPE") == "vxlan"


def test_local_conf_values_win(tmp_path: Path) -> None:
    run = ok(
        run_devstack(
            tmp_path,
            [],
            {"Q_ML2_PLUGIN_MECHANISM_DRIVERS": "netagent,l2population"},
            after="dump Q_ML2_PLUGIN_MECHANISM_DRIVERS",
        )
    )
    assert run.var("Q_ML2_PLUGIN_MECHANISM_DRIVERS") == "netagent,l2population"


def test_settings_swap_q_agt_and_ovn_for_netagent_agent(tmp_path: Path) -> None:
    run = ok(run_devstack(tmp_path, [], after="dump ENABLED_SERVICES DISABLED_SERVICES"))
    enabled = run.var("ENABLED_SERVICES").split(",")
    assert "netagent-agent" in enabled
    assert "q-svc" in enabled
    gone = {"q-agt", "q-ovn-agent", "ovn-controller", "ovn-northd", "ovs-vswitchd", "ovsdb-server"}
    assert gone.isdisjoint(enabled)
    assert gone <= set(run.var("DISABLED_SERVICES").split(","))


def test_other_agent_is_left_alone(tmp_path: Path) -> None:
    """With another Q_AGENT the plugin only installs the code: no service swap and none
    of that agent's hooks overridden."""
    run = ok(
        run_devstack(
            tmp_path,
            ["stack pre-install"],
            {"Q_AGENT": "openvswitch", "ENABLED_SERVICES": "q-svc,q-agt"},
            after="dump ENABLED_SERVICES; declare -F",
        )
    )
    assert run.var("ENABLED_SERVICES") == "q-svc,q-agt"
    defined = set(re.findall(r"^declare -f (\S+)$", run.stdout, re.MULTILINE))
    assert defined.isdisjoint(HOOKS)
    assert run.named("install_package") == []


def test_every_agent_hook_is_defined(tmp_path: Path) -> None:
    checks = "\n".join(f"declare -F {hook} >/dev/null || echo MISSING={hook}" for hook in HOOKS)
    run = ok(run_devstack(tmp_path, ["stack pre-install"], after=checks))
    assert "MISSING=" not in run.stdout


def test_hooks_behave(tmp_path: Path) -> None:
    dhcp = str(tmp_path / "dhcp_agent.ini")
    run = ok(
        run_devstack(
            tmp_path,
            ["stack pre-install"],
            after=f"""
if is_neutron_ovs_base_plugin; then echo OVS_BASE=yes; else echo OVS_BASE=no; fi
neutron_plugin_create_nova_conf /etc/nova/nova.conf
neutron_plugin_install_agent_packages
neutron_plugin_configure_dhcp_agent {dhcp}
neutron_plugin_configure_l3_agent /etc/neutron/l3_agent.ini
neutron_plugin_setup_interface_driver {dhcp}
if neutron_plugin_check_adv_test_requirements; then echo ADV=yes; else echo ADV=no; fi
""",
        )
    )
    assert run.var("OVS_BASE") == "no"
    assert run.var("ADV") == "no"  # no q-dhcp
    helper = (
        f"sudo {BIN}/privsep-helper --config-file /etc/neutron/neutron.conf --config-file {dhcp}"
    )
    assert run.named("iniset") == [
        [dhcp, "netagent_privsep", "helper_command", helper],
        [dhcp, "netagent", "l2_driver", "linuxbridge"],  # NETAGENT_L2_DRIVER
        [dhcp, "DEFAULT", "interface_driver", "netagent"],
    ]
    assert run.named("warn") == []
    # pre-install's packages only, nothing from the hooks
    assert len(run.named("install_package")) == 1


def test_plugin_agent_hook_refuses_q_agt(tmp_path: Path) -> None:
    run = run_devstack(
        tmp_path, ["stack pre-install"], after="neutron_plugin_configure_plugin_agent"
    )
    assert run.returncode == 1
    assert "disable q-agt" in run.named("die")[0][-1]


def test_interface_driver_can_be_set(tmp_path: Path) -> None:
    run = ok(
        run_devstack(
            tmp_path,
            ["stack pre-install"],
            {"NETAGENT_INTERFACE_DRIVER": "null"},
            after="neutron_plugin_setup_interface_driver /etc/neutron/l3_agent.ini",
        )
    )
    assert run.named("iniset") == [
        ["/etc/neutron/l3_agent.ini", "DEFAULT", "interface_driver", "null"]
    ]
    assert run.named("warn") == []


def test_removed_linuxbridge_interface_driver_warns(tmp_path: Path) -> None:
    run = ok(
        run_devstack(
            tmp_path,
            ["stack pre-install"],
            {"NETAGENT_INTERFACE_DRIVER": "linuxbridge"},
            after="neutron_plugin_setup_interface_driver /etc/neutron/dhcp_agent.ini",
        )
    )
    (warning,) = run.named("warn")
    assert warning[-1].endswith("have no such driver; set NETAGENT_INTERFACE_DRIVER")


def test_pre_install_packages_and_br_netfilter(tmp_path: Path) -> None:
    run = ok(run_devstack(tmp_path, ["stack pre-install"]))
    assert run.named("install_package") == [
        ["iproute2", "iptables", "ipset", "ebtables", "conntrack"]
    ]
    assert run.named("enable_kernel_bridge_firewall") == [[]]


@pytest.mark.parametrize(
    "local_conf",
    [
        {"STUB_IN_CONTAINER": "1"},
        {"NETAGENT_FIREWALL_DRIVER": "noop"},
        {"Q_USE_SECGROUP": "False"},
    ],
)
def test_pre_install_no_br_netfilter(tmp_path: Path, local_conf: dict[str, str]) -> None:
    run = ok(run_devstack(tmp_path, ["stack pre-install"], local_conf))
    assert run.named("install_package")
    assert run.named("enable_kernel_bridge_firewall") == []


def test_node_without_agent_installs_no_packages_and_writes_no_config(tmp_path: Path) -> None:
    run = ok(
        run_devstack(
            tmp_path,
            ["stack pre-install", "stack post-config", "stack extra"],
            # what a controller's local.conf says: disable_service netagent-agent
            {"DISABLED_SERVICES": "netagent-agent"},
        )
    )
    assert run.named("install_package") == []
    assert run.named("iniset") == []
    assert not (tmp_path / "etc-netagent").exists()
    # run_process itself skips services that are not enabled
    assert [c[0] for c in run.named("run_process")] == ["netagent-agent"]


def _requirements_dir(tmp: Path) -> Path:
    """A REQUIREMENTS_DIR whose edit-constraints records its call."""
    req = tmp / "requirements"
    (req / ".venv" / "bin").mkdir(parents=True)
    tool = req / ".venv" / "bin" / "edit-constraints"
    tool.write_text(f'#!/bin/bash\nsource {STUBS}\n_record edit-constraints "$@"\n')
    tool.chmod(0o755)
    return req


def test_install_server_side_with_neutron_extra(tmp_path: Path) -> None:
    req = _requirements_dir(tmp_path)
    run = ok(run_devstack(tmp_path, ["stack install"], {"REQUIREMENTS_DIR": str(req)}))
    assert run.named("setup_develop") == [[str(REPO), "neutron"]]
    # the pyroute2 pin is dropped before the install
    assert [c[0] for c in run.calls] == ["edit-constraints", "setup_develop"]
    assert run.named("edit-constraints") == [
        [str(req / "upper-constraints.txt"), "--", "pyroute2"]
    ]


def test_install_compute_node_without_extra(tmp_path: Path) -> None:
    run = ok(
        run_devstack(
            tmp_path, ["stack install"], {"ENABLED_SERVICES": "n-cpu,placement-client,rabbit"}
        )
    )
    assert run.named("setup_develop") == [[str(REPO)]]


def _conf_calls(run: Run) -> list[list[str]]:
    conf = str(run.tmp / "etc-netagent" / "netagent.conf")
    calls = run.named("iniset")
    assert all(c[0] == conf for c in calls), calls
    return [c[1:] for c in calls]


def _sample_options() -> set[tuple[str, str]]:
    """(section, option) of every option the generated sample lists."""
    options = set()
    section = ""
    for line in SAMPLE.read_text().splitlines():
        if m := re.match(r"^\[(\w+)\]$", line):
            section = m.group(1)
        elif m := re.match(r"^#(\w+) =", line):
            options.add((section, m.group(1)))
    return options


def _apply(run: Run) -> Path:
    """The config file the iniset calls would leave (written over the copied sample)."""
    path = run.tmp / "etc-netagent" / "netagent.conf"
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(path)
    for section, option, value in _conf_calls(run):
        if section != "DEFAULT" and not parser.has_section(section):
            parser.add_section(section)
        parser.set(section, option, value)
    out = run.tmp / "applied.conf"
    with out.open("w") as f:
        parser.write(f)
    return out


def test_post_config_writes_netagent_conf(tmp_path: Path) -> None:
    run = ok(run_devstack(tmp_path, ["stack post-config"], {"NETAGENT_HOST": "compute-1"}))
    conf_dir = tmp_path / "etc-netagent"
    assert (conf_dir / "netagent.conf").read_text() == SAMPLE.read_text()
    assert (tmp_path / "data" / "netagent").is_dir()
    assert _conf_calls(run) == [
        ["DEFAULT", "host", "compute-1"],
        ["DEFAULT", "state_path", str(tmp_path / "data" / "netagent")],
        ["DEFAULT", "transport_url", "rabbit://stackrabbit:secret@192.0.2.10:5672/"],
        ["DEFAULT", "debug", "True"],
        ["agent", "source", "neutron"],
        ["agent", "l2_driver", "linuxbridge"],
        ["agent", "firewall_driver", "iptables"],
        ["linuxbridge", "local_ip", "192.0.2.10"],
    ]
    assert run.named("setup_logging") == [[str(conf_dir / "netagent.conf")]]


def test_post_config_option_names_are_netagents(tmp_path: Path) -> None:
    """Every option written exists in the generated sample, and netagent's own options
    load with the values devstack meant."""
    run = ok(
        run_devstack(
            tmp_path,
            ["stack post-config"],
            {
                "NETAGENT_HOST": "compute-1",
                "NETAGENT_PHYSICAL_INTERFACE": "eth1",
                "Q_ML2_PLUGIN_MECHANISM_DRIVERS": "netagent,l2population",
            },
        )
    )
    written = {(c[0], c[1]) for c in _conf_calls(run)}
    assert written - _sample_options() == set()
    conf = cfg.ConfigOpts()
    netagent.conf.register_all(conf)
    conf(["--config-file", str(_apply(run))], project="netagent", default_config_files=[])
    assert conf.host == "compute-1"
    assert conf.agent.source == "neutron"
    assert conf.agent.l2_driver == "linuxbridge"
    assert conf.agent.firewall_driver == "iptables"
    assert conf.linuxbridge.local_ip == "192.0.2.10"
    assert conf.linuxbridge.physical_interface_mappings == ["public:eth1"]
    assert conf.neutron.l2_population is True


def test_post_config_without_security_groups_uses_noop_firewall(tmp_path: Path) -> None:
    run = ok(run_devstack(tmp_path, ["stack post-config"], {"Q_USE_SECGROUP": "False"}))
    assert ["agent", "firewall_driver", "noop"] in _conf_calls(run)


def test_post_config_without_tunnels_sets_no_local_ip(tmp_path: Path) -> None:
    run = ok(
        run_devstack(
            tmp_path,
            ["stack post-config"],
            {
                "ENABLE_TENANT_TUNNELS": "False",
                "NETAGENT_PHYSICAL_INTERFACE_MAPPINGS": "physnet1:eth1,public:eth2",
            },
        )
    )
    sections = {(c[0], c[1]): c[2] for c in _conf_calls(run)}
    assert ("linuxbridge", "local_ip") not in sections
    assert sections[("linuxbridge", "physical_interface_mappings")] == "physnet1:eth1,public:eth2"
    assert ("neutron", "l2_population") not in sections


def test_extra_runs_the_agent_as_root(tmp_path: Path) -> None:
    run = ok(run_devstack(tmp_path, ["stack extra"]))
    conf = tmp_path / "etc-netagent" / "netagent.conf"
    assert run.named("run_process") == [
        ["netagent-agent", f"{BIN}/netagent-agent --config-file {conf}", "", "root"]
    ]
    assert shlex.split(run.named("run_process")[0][1])[0] == f"{BIN}/netagent-agent"


def test_test_config_writes_tempest_options(tmp_path: Path) -> None:
    run = ok(run_devstack(tmp_path, ["stack test-config"]))
    conf = str(tmp_path / "tempest.conf")
    assert run.named("iniset") == [
        [conf, "neutron_plugin_options", "available_type_drivers", "flat,vxlan"],
        [conf, "service_available", "netagent", "True"],
        [conf, "netagent", "firewall_driver", "iptables"],
        [conf, "netagent", "tunnel_types", "vxlan"],
    ]


def test_test_config_physical_network_and_hosts(tmp_path: Path) -> None:
    local_conf = {
        "NETAGENT_PHYSICAL_INTERFACE_MAPPINGS": "physnet1:eth1,physnet2:eth2",
        "NETAGENT_TEMPEST_HOSTS": "compute-1,compute-2",
        "ENABLE_TENANT_TUNNELS": "False",
        "Q_USE_SECGROUP": "False",
    }
    run = ok(run_devstack(tmp_path, ["stack test-config"], local_conf))
    options = {(c[1], c[2]): c[3] for c in run.named("iniset")}
    assert options[("netagent", "physical_network")] == "physnet1"
    assert options[("netagent", "hosts")] == "compute-1,compute-2"
    assert options[("netagent", "tunnel_types")] == ""
    assert options[("netagent", "firewall_driver")] == "noop"


def test_test_config_without_tempest_writes_nothing(tmp_path: Path) -> None:
    services = STACKRC_SERVICES.replace(",tempest", "")
    run = ok(run_devstack(tmp_path, ["stack test-config"], {"ENABLED_SERVICES": services}))
    assert run.named("iniset") == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (None, "{plugin}"),
        ("0", "{plugin}"),
        ("/opt/stack/neutron-tempest-plugin", "/opt/stack/neutron-tempest-plugin {plugin}"),
        ("{plugin} /opt/stack/x", "{plugin} /opt/stack/x"),
    ],
)
def test_settings_add_the_tempest_plugin_to_tempest_plugins(
    tmp_path: Path, before: str | None, after: str
) -> None:
    """devstack's own test-config step pip-installs TEMPEST_PLUGINS into tempest's venv."""
    plugin = str(REPO / "tempest_plugin")
    local_conf = {} if before is None else {"TEMPEST_PLUGINS": before.format(plugin=plugin)}
    run = ok(run_devstack(tmp_path, [], local_conf, after="dump TEMPEST_PLUGINS"))
    assert run.var("TEMPEST_PLUGINS") == after.format(plugin=plugin)


def test_settings_leave_tempest_plugins_alone_without_tempest(tmp_path: Path) -> None:
    services = STACKRC_SERVICES.replace(",tempest", "")
    run = ok(
        run_devstack(tmp_path, [], {"ENABLED_SERVICES": services}, after="dump TEMPEST_PLUGINS")
    )
    assert run.var("TEMPEST_PLUGINS") == ""


def test_unstack_stops_the_agent(tmp_path: Path) -> None:
    run = ok(run_devstack(tmp_path, ["unstack"]))
    assert run.named("stop_process") == [["netagent-agent"]]


def test_clean_runs_netagent_cleanup(tmp_path: Path) -> None:
    conf = tmp_path / "etc-netagent" / "netagent.conf"
    conf.parent.mkdir()
    conf.write_text("")
    run = ok(run_devstack(tmp_path, ["clean"]))
    assert run.named("sudo") == [[f"{BIN}/netagent-cleanup", "--config-file", str(conf)]]


def test_clean_without_config_does_nothing(tmp_path: Path) -> None:
    run = ok(run_devstack(tmp_path, ["clean"]))
    assert run.named("sudo") == []


def test_whole_stack_in_one_shell(tmp_path: Path) -> None:
    """All phases in stack.sh's order in one shell, as devstack runs them."""
    phases = [
        "stack pre-install",
        "stack install",
        "stack post-config",
        "stack extra",
        "stack test-config",
    ]
    run = ok(run_devstack(tmp_path, phases))
    order = [
        c[0] for c in run.calls if c[0] in {"install_package", "setup_develop", "run_process"}
    ]
    assert order == ["install_package", "setup_develop", "run_process"]

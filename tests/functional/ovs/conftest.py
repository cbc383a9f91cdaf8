"""Fixtures of the Open vSwitch tests: a private ovsdb-server + ovs-vswitchd per test.

Both daemons run inside the test's namespace from a private directory (testing.md, "Open
vSwitch without a kernel module"); the fixture stops them by their pidfiles' PIDs and
removes the directory, also when the test fails. Directories of crashed runs are removed
at the start of the session.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.conf import ovs as ovs_conf
from netagent.drivers.openvswitch import OpenvswitchDriver
from netagent.drivers.openvswitch.driver import mgmt_target
from tests.common import ovs as ovs_helper
from tests.common import traffic
from tests.common.ovs import PrivateOvs
from tests.common.vmctl import vmctl

LOCAL_IP = "198.18.0.1"


@pytest.fixture(scope="session", autouse=True)
def _remove_leftover_ovs() -> None:
    for path in ovs_helper.leftover_dirs():
        ovs_helper.remove_leftover(path)


@pytest.fixture
def ovs(netns: str) -> Iterator[PrivateOvs]:
    if not ovs_helper.available():
        pytest.skip("Open vSwitch is not installed (tools/setup-host.sh)")
    private = PrivateOvs(netns)
    try:
        private.start()
        yield private
    finally:
        private.stop()


@pytest.fixture
def make_driver(ovs: PrivateOvs) -> Iterator[Callable[..., OpenvswitchDriver]]:
    conf = cfg.ConfigOpts()
    ovs_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    made: list[OpenvswitchDriver] = []

    def factory(initialize: bool = True, **overrides: Any) -> OpenvswitchDriver:
        options = {
            "local_ip": LOCAL_IP,
            "datapath_type": "netdev",
            "ovsdb_connection": ovs.connection,
            **overrides,
        }
        fixture.config(group="ovs", **options)
        driver = OpenvswitchDriver(conf)
        made.append(driver)
        if initialize:
            driver.initialize()
        return driver

    yield factory
    for driver in made:
        driver._ovsdb.close()
    fixture.cleanUp()


def plug_vm(
    ovs: PrivateOvs, host_ns: str, vm_ns: str, port_id: str, mac: str, ip_cidr: str
) -> None:
    """What os-vif and the hypervisor do: the VM namespace ``vm_ns`` gets ``eth0`` whose
    veth peer ``tap<id>`` sits in the host namespace (made by ``tools/vmctl.py``), added to
    br-int with ``iface-id``/``attached-mac``. TX checksum offload is off (the userspace datapath
    forwards the partial checksums of a veth as they are, testing.md).
    """
    tap = vmctl.create_vm(
        vm_ns=vm_ns, port_id=port_id, mac=mac, ips=[ip_cidr], host_ns=host_ns, mtu=1450
    )
    run("ip", "netns", "exec", vm_ns, "ethtool", "-K", "eth0", "tx", "off")
    ovs.vsctl(
        "add-port",
        "br-int",
        tap,
        "--",
        "set",
        "Interface",
        tap,
        f"external_ids:iface-id={port_id}",
        f"external_ids:attached-mac={mac}",
        "external_ids:iface-status=active",
    )


def run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if proc.returncode:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stderr}")
    return proc.stdout


def can_ping(vm_ns: str, address: str, count: int = 2) -> bool:
    return traffic.ping(vm_ns, address, count)


__all__ = ["LOCAL_IP", "can_ping", "mgmt_target", "plug_vm"]

"""Interop hosts with a private Open vSwitch each (userspace datapath, tunnel address on
``br-phy``, as in tests/fullstack/test_openvswitch.py), running netagent with ``l2_driver =
openvswitch``; VMs are plugged the way os-vif plugs ``vif_type ovs``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.common import ovs as ovs_helper
from tests.common.ovs import PrivateOvs
from tests.fullstack import harness, ovs_host
from tests.interop import cloud, neutron_server


class OvsInteropFabric(cloud.InteropFabric):
    """Interop hosts with a private Open vSwitch each."""

    def __init__(
        self, workdir: Path, server: neutron_server.NeutronServer, **options: Any
    ) -> None:
        super().__init__(workdir, server, **options)
        self.switches: dict[str, PrivateOvs] = {}

    def add_host(self, name: str, tunnel_ip: str) -> harness.Host:
        host = super().add_host(name, tunnel_ip)
        switch = PrivateOvs(host.netns)
        self.switches[name] = switch
        switch.start()
        ovs_host.tunnel_on_br_phy(switch, host.netns, tunnel_ip)
        return host

    def write_agent_config(self, host: harness.Host) -> None:
        super().write_agent_config(host)
        text = host.config_file.read_text().replace(
            "l2_driver = linuxbridge", "l2_driver = openvswitch"
        )
        host.config_file.write_text(
            text + "[ovs]\n"
            f"local_ip = {host.tunnel_ip}\n"
            "datapath_type = netdev\n"
            f"ovsdb_connection = {self.switches[host.name].connection}\n"
        )

    def plug_like_os_vif(self, vm: harness.Vm, bridge: str, hybrid: bool = False) -> None:
        ovs_host.plug_like_os_vif(self.switches[vm.host.name], vm, bridge, hybrid)

    def close(self) -> None:
        super().close()
        for switch in self.switches.values():
            switch.stop()


@contextlib.contextmanager
def running(
    neutron: neutron_server.NeutronServer,
    workdir: Path,
    hosts: Mapping[str, str],
    **options: Any,
) -> Iterator[OvsInteropFabric]:
    """Simulated Open vSwitch hosts (name -> tunnel address) running real agents against
    ``neutron`` (``options``: :class:`cloud.InteropFabric`'s, e.g. ``firewall_driver``);
    namespaces and private switches of crashed runs removed first, everything removed
    after, diagnostics printed."""
    for path in ovs_helper.leftover_dirs():
        ovs_helper.remove_leftover(path)
    with cloud.running_fabric(neutron, workdir, hosts, OvsInteropFabric, **options) as fab:
        yield fab

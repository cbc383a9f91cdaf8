"""Option listing for oslo-config-generator (entry point ``oslo.config.opts``)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

from oslo_config import cfg

from netagent.conf import (
    agent,
    file_source,
    interface_driver,
    iptables,
    linuxbridge,
    neutron,
    ovs,
)


def list_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    return [
        ("DEFAULT", copy.deepcopy(agent.DEFAULT_OPTS)),
        ("agent", copy.deepcopy(agent.AGENT_OPTS)),
        ("file_source", copy.deepcopy(file_source.FILE_SOURCE_OPTS)),
        ("linuxbridge", copy.deepcopy(linuxbridge.LINUXBRIDGE_OPTS)),
        ("ovs", copy.deepcopy(ovs.OVS_OPTS)),
        ("iptables", copy.deepcopy(iptables.IPTABLES_OPTS)),
        ("neutron", copy.deepcopy(neutron.NEUTRON_OPTS)),
    ]


def list_interface_driver_opts() -> list[tuple[str, Sequence[cfg.Opt]]]:
    """Options of the interface driver, read by neutron-dhcp-agent (dhcp_agent.ini)."""
    return [(interface_driver.GROUP, copy.deepcopy(interface_driver.INTERFACE_DRIVER_OPTS))]

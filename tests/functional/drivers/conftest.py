"""Fixtures of the Linux bridge driver's functional tests: a host namespace, the driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent.conf import linuxbridge as lb_conf
from netagent.drivers.linuxbridge import LinuxBridgeDriver
from tests.functional.drivers.helpers import LOCAL_IP, add_nic, sh


@pytest.fixture
def host(netns: str) -> str:
    """The test namespace with an underlay address on a veth end."""
    add_nic(netns, "ul0")
    sh(netns, "addr", "add", f"{LOCAL_IP}/15", "dev", "ul0")
    sh(netns, "link", "set", "ul0", "up")
    return netns


@pytest.fixture
def make_driver(host: str) -> Iterator[Callable[..., LinuxBridgeDriver]]:
    conf = cfg.ConfigOpts()
    lb_conf.register_opts(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()

    def factory(**overrides: Any) -> LinuxBridgeDriver:
        options = {"local_ip": LOCAL_IP, "vxlan_udp_port": 4790, **overrides}
        fixture.config(group="linuxbridge", **options)
        driver = LinuxBridgeDriver(conf, netns=host)
        driver.initialize()
        return driver

    yield factory
    fixture.cleanUp()


@pytest.fixture
def driver(make_driver: Callable[..., LinuxBridgeDriver]) -> LinuxBridgeDriver:
    return make_driver()

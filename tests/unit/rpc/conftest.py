"""Fixtures: a config with the agent's options, a fake:// transport, a fake server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import oslo_messaging
import pytest
from oslo_config import cfg
from oslo_config import fixture as config_fixture

from netagent import conf as netagent_conf
from netagent.rpc import transport as rpc_transport
from tests.fullstack.fake_neutron import FakeNeutron


@pytest.fixture
def conf() -> Iterator[cfg.ConfigOpts]:
    conf = cfg.ConfigOpts()
    netagent_conf.register_all(conf)
    fixture = config_fixture.Config(conf)
    fixture.setUp()
    conf([], project="netagent")
    fixture.config(host="cmp1")
    fixture.config(group="neutron", report_interval=5, retry_interval=0.1)
    fixture.config(group="agent", resync_interval=0)
    yield conf
    fixture.cleanUp()


@pytest.fixture
def transport(conf: cfg.ConfigOpts) -> Iterator[Any]:
    """A fake:// transport; each transport has its own in-memory exchanges."""
    transport = rpc_transport.build_transport(conf, url="fake:/")
    # rpc_response_timeout is registered by the first RPC client
    oslo_messaging.get_rpc_client(transport, oslo_messaging.Target(topic="x"))
    conf.set_override("rpc_response_timeout", 2)
    yield transport
    transport.cleanup()


@pytest.fixture
def fake(transport: Any) -> Iterator[FakeNeutron]:
    server = FakeNeutron(transport).start()
    yield server
    server.stop()

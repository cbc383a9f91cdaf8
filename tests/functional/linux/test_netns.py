"""Namespaces: created like ``ip netns add``, listed, entered, deleted; lookups never create."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from netagent.linux import ip_lib, netns
from netagent.privileged import nsenter
from netagent.privileged.errors import InvalidArgument, NamespaceExists, NamespaceNotFound
from tests.functional.conftest import TEST_NETNS_PREFIX


@pytest.fixture
def ns_name() -> Iterator[str]:
    name = f"{TEST_NETNS_PREFIX}own-{uuid.uuid4().hex[:8]}"
    yield name
    if os.path.exists(f"/run/netns/{name}"):
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_create_list_delete(ns_name: str) -> None:
    netns.create(ns_name)
    assert (
        ns_name in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    assert netns.exists(ns_name)
    assert ns_name in netns.list_namespaces(f"{TEST_NETNS_PREFIX}own-")
    assert all(n.startswith(TEST_NETNS_PREFIX) for n in netns.list_namespaces(TEST_NETNS_PREFIX))
    assert ip_lib.get_device("lo", namespace=ns_name).up
    # ip netns exec sees the same namespace
    ip_lib.apply(ip_lib.CreateBridge(name="brx"), namespace=ns_name)
    out = subprocess.run(
        ["ip", "netns", "exec", ns_name, "ip", "link", "show", "brx"], capture_output=True
    )
    assert out.returncode == 0
    with pytest.raises(NamespaceExists):
        netns.create(ns_name)
    netns.delete(ns_name)
    assert not netns.exists(ns_name)
    assert ns_name not in netns.list_namespaces(TEST_NETNS_PREFIX)
    with pytest.raises(NamespaceNotFound):
        netns.delete(ns_name)
    netns.delete(ns_name, missing_ok=True)


def test_run_in_namespace(ns_name: str) -> None:
    netns.create(ns_name)
    ip_lib.apply(ip_lib.CreateBridge(name="inside0"), namespace=ns_name)
    assert nsenter.call_in_namespace(ns_name, socket_if_names) == {"lo", "inside0"}
    with pytest.raises(ZeroDivisionError):
        nsenter.call_in_namespace(ns_name, divmod, 1, 0)
    assert "inside0" not in socket_if_names()  # the caller stayed where it was


def socket_if_names() -> set[str]:
    return {name for _index, name in socket.if_nameindex()}


def test_lookups_never_create(ns_name: str) -> None:
    with pytest.raises(NamespaceNotFound):
        ip_lib.list_devices(namespace=ns_name)
    with pytest.raises(NamespaceNotFound):
        nsenter.call_in_namespace(ns_name, os.getpid)
    assert not netns.exists(ns_name)
    assert not os.path.exists(f"/run/netns/{ns_name}")


@pytest.mark.parametrize("bad", ["", "a/b", "..", ".", "x" * 129, "a b", "../etc"])
def test_invalid_namespace_names(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        netns.create(bad)
    with pytest.raises(InvalidArgument):
        ip_lib.list_devices(namespace=bad)

"""The netlink link monitor against the real kernel, inside a test namespace."""

from __future__ import annotations

import queue
import subprocess
from collections.abc import Iterator

import pytest

from netagent.linux.link_monitor import LinkMonitor
from netagent.privileged import link_events
from netagent.privileged.errors import NamespaceNotFound

Event = tuple[str, "int | None"]


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True, capture_output=True)


def ifindex(netns: str, name: str) -> int:
    out = subprocess.run(
        ["ip", "-n", netns, "-o", "link", "show", "dev", name],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.split(":", 1)[0])


class Watch:
    def __init__(self, netns: str) -> None:
        self.events: queue.Queue[Event] = queue.Queue()
        self.monitor = LinkMonitor(netns, name_filter=lambda n: n.startswith("tap"))
        self.initial = self.monitor.start(lambda name, idx: self.events.put((name, idx)))

    def next(self, timeout: float = 5.0) -> Event:
        return self.events.get(timeout=timeout)

    def quiet(self, timeout: float = 0.5) -> bool:
        try:
            unexpected = self.events.get(timeout=timeout)
        except queue.Empty:
            return True
        pytest.fail(f"unexpected event {unexpected}")


@pytest.fixture
def watch(netns: str) -> Iterator[Watch]:
    w = Watch(netns)
    yield w
    w.monitor.stop()


def test_initial_dump_sees_existing_devices(netns: str) -> None:
    ip(netns, "tuntap", "add", "dev", "tapexisting", "mode", "tap")
    w = Watch(netns)
    try:
        assert w.initial == {"tapexisting": ifindex(netns, "tapexisting")}
        assert w.quiet()
    finally:
        w.monitor.stop()


def test_tap_appears_and_vanishes(netns: str, watch: Watch) -> None:
    ip(netns, "tuntap", "add", "dev", "tap0123456789", "mode", "tap")
    index = ifindex(netns, "tap0123456789")
    assert watch.next() == ("tap0123456789", index)
    ip(netns, "link", "set", "tap0123456789", "up")  # a change of flags is not an event
    assert watch.quiet()
    ip(netns, "link", "del", "tap0123456789")
    assert watch.next() == ("tap0123456789", None)
    assert watch.monitor.devices() == {}


def test_veth_peer_named_like_a_nova_tap(netns: str, watch: Watch) -> None:
    ip(netns, "link", "add", "tapvm1", "type", "veth", "peer", "name", "vm1eth0")
    assert watch.next() == ("tapvm1", ifindex(netns, "tapvm1"))
    ip(netns, "link", "set", "tapvm1", "name", "renamed0")  # renamed away: vanished
    assert watch.next() == ("tapvm1", None)
    ip(netns, "link", "set", "renamed0", "name", "tapvm2")  # renamed into a tap name
    assert watch.next() == ("tapvm2", ifindex(netns, "tapvm2"))
    ip(netns, "link", "del", "vm1eth0")  # deleting the peer deletes both ends
    assert watch.next() == ("tapvm2", None)


def test_leaving_a_bridge_is_not_a_deletion(netns: str, watch: Watch) -> None:
    ip(netns, "link", "add", "natestbr", "type", "bridge")
    ip(netns, "link", "add", "tapbr0", "type", "veth", "peer", "name", "peerbr0")
    assert watch.next() == ("tapbr0", ifindex(netns, "tapbr0"))
    # the bridge code sends AF_BRIDGE RTM_NEWLINK/RTM_DELLINK for its ports
    ip(netns, "link", "set", "tapbr0", "master", "natestbr")
    ip(netns, "link", "set", "tapbr0", "nomaster")
    assert watch.quiet()
    assert "tapbr0" in watch.monitor.devices()


def test_device_recreated_gets_a_new_ifindex(netns: str, watch: Watch) -> None:
    ip(netns, "tuntap", "add", "dev", "taprecreate", "mode", "tap")
    first = watch.next()
    ip(netns, "link", "del", "taprecreate")
    ip(netns, "tuntap", "add", "dev", "taprecreate", "mode", "tap")
    assert watch.next() == ("taprecreate", None)
    second = watch.next()
    assert second[0] == "taprecreate" and second[1] != first[1]


def test_dump_of_a_missing_namespace_fails_cleanly() -> None:
    with pytest.raises(NamespaceNotFound):
        link_events.LinkEventSocket("natest-does-not-exist")
    monitor = LinkMonitor("natest-does-not-exist")
    with pytest.raises(NamespaceNotFound):
        monitor.start(lambda name, idx: None)

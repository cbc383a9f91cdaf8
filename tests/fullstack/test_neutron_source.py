"""The real ``netagent-agent`` with ``[agent] source = neutron`` against the in-repo server.

Each test runs the agent process inside a simulated host namespace (fullstack harness;
VMs made by tools/vmctl.py), reaching RabbitMQ through a relay that listens on
127.0.0.1:5672 inside that namespace, exactly as the interop tier does. The server side is
:class:`tests.fullstack.fake_neutron.FakeNeutron`, answering from a dict of port details,
which can produce the faults a real neutron-server cannot produce on demand (malformed
entries, unknown methods, newer versions, late replies).

Most tests use a vhost of their own on the shared broker (127.0.0.1:5672). The outage test
runs a private RabbitMQ node (:mod:`tests.fullstack.private_rabbit`) and stops it for
:data:`OUTAGE` seconds: the shared broker is never stopped.

Assertions are on the server's view (calls received) and on kernel state and packets;
log lines are checked only where the behaviour asked for is a log line.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.common.relay import Relay
from tests.fullstack import fake_neutron, harness, private_rabbit
from tests.fullstack.harness import Fabric, Vm, links, wait_for

DETAILS = "get_devices_details_list_and_failed_devices"
PORT_UPDATE_TOPIC = "q-agent-notifier-port-update"
#: Broker outage length of the resilience test (issue 5: "a minute-long broker outage").
OUTAGE = float(os.environ.get("NETAGENT_OUTAGE_SECONDS", "60"))
SHARED_BROKER = ("127.0.0.1", 5672)
VHOST_PREFIX = "na-fullstack-"
VHOST_RE = re.compile(rf"^{VHOST_PREFIX}(\d+)-[0-9a-f]{{6}}$")


# -- broker fixtures ---------------------------------------------------------------------


def rabbitmqctl(*args: str) -> str:
    proc = subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module", autouse=True)
def _broker_leftovers() -> None:
    """Vhosts and private nodes of crashed runs (their creating process is gone)."""
    if os.environ.get("NETAGENT_FULLSTACK") != "1" or os.geteuid() != 0:
        return
    private_rabbit.remove_leftovers()
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        for name in rabbitmqctl("list_vhosts", "name").split():
            match = VHOST_RE.match(name)
            if match and not _pid_alive(int(match.group(1))):
                rabbitmqctl("delete_vhost", name)


@pytest.fixture
def vhost() -> Iterator[str]:
    """A vhost of the test's own on the shared broker, deleted afterwards."""
    name = f"{VHOST_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            rabbitmqctl("delete_vhost", name)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[private_rabbit.PrivateRabbit]:
    """A RabbitMQ node of the test's own, stopped by PID and removed afterwards."""
    reason = private_rabbit.unavailable()
    if reason:
        pytest.skip(f"no private RabbitMQ node: {reason}")
    node = private_rabbit.PrivateRabbit(tmp_path)
    try:
        node.start()
        yield node
    finally:
        node.close()


# -- one simulated host, its agent and the fake server ---------------------------------


class NeutronHost:
    """Host ``cmp1`` (namespace, relay to the broker, agent config) and the fake server.

    :param broker_url: the server side's transport URL (root namespace).
    :param agent_url: the agent's transport URL, as seen from inside the host namespace.
    :param target: where the relay forwards (the broker's AMQP port, root namespace).
    """

    def __init__(self, fabric: Fabric, broker_url: str, agent_url: str, target: int) -> None:
        self.fabric = fabric
        self.host = fabric.add_host("cmp1", "198.18.0.1")
        self.agent_url = agent_url
        self.relay = Relay(("127.0.0.1", target), listen_port=5672, netns=self.host.netns)
        self.relay.start()
        self.fake = fake_neutron.FakeNeutron(fake_neutron.make_transport(broker_url))
        self.fake_started = False
        self.network = fabric.add_network(1001)
        self.vms: list[Vm] = []

    def add_vms(self, count: int) -> list[Vm]:
        """VMs on the host's network whose ports the fake server knows (bound to cmp1)."""
        added = []
        for _ in range(count):
            n = len(self.vms)
            vm = self.fabric.add_vm(
                f"vm{n}", self.host, self.network, f"192.0.2.{10 + n}/24", in_state=False
            )
            self.fake.ports[vm.port_id] = self.details(vm)
            self.vms.append(vm)
            added.append(vm)
        return added

    def details(self, vm: Vm, **extra: Any) -> dict[str, Any]:
        """The server's details entry of ``vm``'s port (§4.2)."""
        network = self.fabric.networks[vm.network_id]
        entry: dict[str, Any] = {
            "port_id": vm.port_id,
            "network_id": vm.network_id,
            "mac_address": vm.mac,
            "admin_state_up": True,
            "network_type": "vxlan",
            "segmentation_id": network["provider:segmentation_id"],
            "physical_network": None,
            "mtu": network["mtu"],
            "fixed_ips": [
                {"subnet_id": self.fabric._subnet_id(vm.network_id), "ip_address": vm.address}
            ],
            "device_owner": "compute:nova",
            "allowed_address_pairs": [],
            "port_security_enabled": True,
            "qos_policy_id": None,
            "qos_network_policy_id": None,
            "profile": {},
            "propagate_uplink_status": False,
        }
        entry.update(extra)
        return entry

    def start_fake(self) -> None:
        self.fake.start()
        self.fake_started = True

    def start_agent(self, agent_options: str = "") -> None:
        """Start the agent; ``agent_options``: more lines of its ``[agent]`` section."""
        host = self.host
        host.state_path.mkdir(exist_ok=True)
        host.config_file.write_text(
            "[DEFAULT]\n"
            f"host = {host.name}\n"
            f"state_path = {host.state_path}\n"
            "debug = true\n"
            f"log_file = {host.log_file}\n"
            f"transport_url = {self.agent_url}\n"
            "rpc_response_timeout = 3\n"
            "[agent]\n"
            "source = neutron\n"
            "l2_driver = linuxbridge\n"
            "resync_interval = 0\n" + agent_options + "[neutron]\n"
            "report_interval = 2\n"
            "retry_interval = 0.5\n"
            "[linuxbridge]\n"
            f"local_ip = {host.tunnel_ip}\n"
            "[oslo_messaging_rabbit]\n"
            "heartbeat_timeout_threshold = 10\n"
        )
        host.start_agent()

    @property
    def pid(self) -> int:
        assert self.host.process is not None
        return self.host.process.pid

    def log(self) -> str:
        path = self.host.log_file
        return path.read_text(errors="replace") if path.exists() else ""

    def warnings(self, text: str) -> list[str]:
        return [line for line in self.log().splitlines() if " WARNING " in line and text in line]

    def details_calls(self) -> list[dict[str, Any]]:
        return self.fake.calls_of(DETAILS)

    def wait_converged(self, vms: list[Vm], timeout: float = 30.0) -> None:
        """Every VM's tap wired and its port reported up."""
        wanted = {vm.port_id for vm in vms}
        wait_for("ports reported up", lambda: wanted <= self.fake.devices_up(), timeout=timeout)
        self.fabric.wait_wired(*vms, timeout=timeout)

    def close(self) -> None:
        # both take seconds: the fake server stops while the agent does
        stopping = threading.Thread(target=self._stop_fake)
        stopping.start()
        try:
            self.host.stop_agent()
        finally:
            stopping.join()
            self.fake.transport.cleanup()
            self.relay.stop()

    def _stop_fake(self) -> None:
        if self.fake_started:
            with contextlib.suppress(Exception):
                self.fake.stop()


@contextlib.contextmanager
def neutron_host(
    fabric: Fabric, broker_url: str, agent_url: str, target: int
) -> Iterator[NeutronHost]:
    env = NeutronHost(fabric, broker_url, agent_url, target)
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def env(fabric: Fabric, vhost: str) -> Iterator[NeutronHost]:
    """``cmp1`` on a vhost of the shared broker; the fake server is started, not the agent."""
    url = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
    with neutron_host(fabric, url, url, SHARED_BROKER[1]) as host:
        host.start_fake()
        yield host


def tap_up(vm: Vm) -> bool:
    return "UP" in links(vm.host.netns)[vm.tap].get("flags", [])


# -- tests ---------------------------------------------------------------------------------


def test_registers_fetches_in_bulk_wires_and_reports_up(env: NeutronHost, fabric: Fabric) -> None:
    vms = env.add_vms(4)
    by_id = {vm.port_id: vm for vm in vms}
    wired_when_reported: dict[str, bool] = {}

    def at_report(kwargs: dict[str, Any]) -> None:
        for port in kwargs["devices_up"]:
            wired_when_reported[port] = fabric.wired(by_id[port])

    env.fake.hooks["update_device_list"] = at_report
    env.start_agent()
    env.wait_converged(vms)
    fabric.wait_ping(vms[0], vms[1])
    # reported up only once wired
    assert wired_when_reported == {vm.port_id: True for vm in vms}
    # registration: start flag on the first report only
    wait_for("second report", lambda: len(env.fake.reports()) >= 2, timeout=10)
    first, second = env.fake.reports()[:2]
    assert first["start_flag"] is True and first["host"] == "cmp1"
    assert not second.get("start_flag")
    assert first["configurations"]["tunneling_ip"] == env.host.tunnel_ip
    wait_for("device count", lambda: env.fake.reports()[-1]["configurations"]["devices"] == 4)
    # one bulk call for the four taps (rpc_resources_processing_step = 20), by prefix
    calls = env.details_calls()
    assert len(calls) == 1
    assert sorted(calls[0]["devices"]) == sorted(vm.port_id[:11] for vm in vms)
    assert calls[0]["host"] == "cmp1"
    assert all(ctx["is_admin"] is True for ctx in env.fake.contexts)
    assert all(env.fake.status[vm.port_id] == "ACTIVE" for vm in vms)
    assert env.fake.devices_down() == set()
    assert env.host.agent_alive()


def test_malformed_port_reported_failed_others_wired(env: NeutronHost, fabric: Fabric) -> None:
    vms = env.add_vms(3)
    good, bad = [vms[0], vms[2]], vms[1]
    prefix = bad.port_id[:11]
    env.fake.override[prefix] = env.details(bad, device=prefix, fixed_ips="garbage")
    env.start_agent()
    env.wait_converged(good)
    fabric.wait_ping(good[0], good[1])
    wait_for("bad port reported down", lambda: prefix in env.fake.devices_down())
    assert bad.port_id not in env.fake.devices_up()
    assert links(env.host.netns)[bad.tap].get("master") is None
    assert env.host.agent_alive()


def test_casts_port_update_refetches_unknown_and_newer_ignored(env: NeutronHost) -> None:
    vms = env.add_vms(2)
    env.start_agent()
    env.wait_converged(vms)
    before = len(env.details_calls())
    for _ in range(2):
        env.fake.cast(PORT_UPDATE_TOPIC, "port_frobnicate", port={"id": vms[0].port_id})
        env.fake.cast(PORT_UPDATE_TOPIC, "port_update", "2.0", port={"id": vms[0].port_id})
    wait_for("unknown method logged", lambda: bool(env.warnings("Ignoring port_frobnicate")))
    wait_for(
        "newer version logged", lambda: bool(env.warnings("Ignoring port_update version 2.0"))
    )
    # the server is told "down" only once the tap is down
    tap_was_up: list[bool] = []

    def at_report(kwargs: dict[str, Any]) -> None:
        if vms[1].port_id in kwargs["devices_down"]:
            tap_was_up.append(tap_up(vms[1]))

    env.fake.hooks["update_device_list"] = at_report
    env.fake.ports[vms[1].port_id]["admin_state_up"] = False
    env.fake.cast(PORT_UPDATE_TOPIC, "port_update", port={"id": vms[1].port_id})
    wait_for("admin down reported", lambda: vms[1].port_id in env.fake.devices_down())
    assert tap_was_up == [False]
    time.sleep(1.0)  # room for a wrong refetch caused by the ignored casts
    refetched = [c["devices"] for c in env.details_calls()[before:]]
    assert refetched == [[vms[1].port_id[:11]]]
    assert len(env.warnings("Ignoring port_frobnicate")) == 1
    assert len(env.warnings("Ignoring port_update version 2.0")) == 1
    assert tap_up(vms[0]) and env.host.agent_alive()


def test_timed_out_reply_retried_with_doubled_timeout(env: NeutronHost) -> None:
    """rpc_response_timeout = 3: the first answer comes after 4 s (lost), the second after
    5 s, which only a doubled timeout (6 s) waits for."""
    (vm,) = env.add_vms(1)
    env.fake.delay[DETAILS] = [4.0, 5.0]
    env.start_agent()
    env.wait_converged([vm], timeout=40)
    assert len(env.details_calls()) == 2
    assert env.warnings(f"RPC {DETAILS} timed out after 3 s; its next calls wait 6 s")


def test_server_down_at_start_is_waited_for(env_no_server: NeutronHost) -> None:
    env = env_no_server
    vms = env.add_vms(2)
    env.start_agent()
    wait_for("waiting log line", lambda: bool(env.warnings("Waiting for neutron-server on")))
    line = env.warnings("Waiting for neutron-server on")[0]
    assert "guest:***@127.0.0.1:5672/" in line and "guest:guest" not in line
    assert env.host.agent_alive()
    time.sleep(10)  # the server stays away for a while
    started = time.monotonic()
    env.start_fake()
    env.wait_converged(vms, timeout=60)
    took = time.monotonic() - started
    print(f"converged {took:.1f} s after the server started")
    # passes wait for the server instead of timing out with ever longer timeouts (one
    # pass started before the first report failed); a lost call no longer delays the end
    assert len(env.warnings(f"RPC {DETAILS} timed out")) <= 1
    assert took < 10
    assert env.fake.reports()[0]["start_flag"] is True
    assert len(env.warnings("Waiting for neutron-server on")) == 1


@pytest.fixture
def env_no_server(fabric: Fabric, vhost: str) -> Iterator[NeutronHost]:
    """Like ``env`` but the fake server is not started."""
    url = f"rabbit://guest:guest@127.0.0.1:5672/{vhost}"
    with neutron_host(fabric, url, url, SHARED_BROKER[1]) as host:
        yield host


def _ping_counts(output: str) -> tuple[int, int]:
    match = re.search(r"(\d+) packets transmitted, (\d+) received", output)
    assert match, output
    return int(match.group(1)), int(match.group(2))


def test_broker_outage_full_resync_no_data_plane_change(
    fabric: Fabric, private_broker: private_rabbit.PrivateRabbit
) -> None:
    """A private node is stopped for OUTAGE seconds and started again."""
    agent_url = "rabbit://guest:guest@127.0.0.1:5672/"
    with neutron_host(fabric, private_broker.url, agent_url, private_broker.port) as env:
        env.start_fake()
        vms = env.add_vms(3)
        env.start_agent()
        env.wait_converged(vms)
        fabric.wait_ping(vms[0], vms[1])
        pid = env.pid
        watched = ("brq", "nvx-", "tap")
        ifindexes = fabric.ifindexes(env.host, watched)
        assert len(ifindexes) == 5  # bridge, vxlan device, three taps
        calls_before = len(env.fake.calls)
        # pings through the outage and the resync after it
        interval, count = 0.2, int((OUTAGE + 15) / 0.2)
        ping_cmd = ["ip", "netns", "exec", vms[0].netns, "ping", "-n", "-q", "-i", str(interval)]
        ping_cmd += ["-c", str(count), "-w", str(int(OUTAGE) + 30), vms[1].address]
        monitor_cmd = ["ip", "-n", env.host.netns, "-o", "monitor", "link"]
        with harness.background(monitor_cmd) as monitor, harness.background(ping_cmd) as pinger:
            private_broker.stop()
            wait_for(
                "state reports failing", lambda: bool(env.warnings("State report to neutron"))
            )
            time.sleep(max(0.0, OUTAGE - 2))
            assert env.host.agent_alive()
            private_broker.start()
            restarted = time.monotonic()

            def resynced() -> bool:
                after = env.fake.calls[calls_before:]
                fetched = {d for m, k in after if m == DETAILS for d in k["devices"]}
                up = {d for m, k in after if m == "update_device_list" for d in k["devices_up"]}
                reported = any(m == "report_state" for m, _ in after)
                return (
                    reported
                    and fetched >= {vm.port_id[:11] for vm in vms}
                    and up >= {vm.port_id for vm in vms}
                )

            wait_for("full resync after the outage", resynced, timeout=90)
            print(f"resynced {time.monotonic() - restarted:.1f} s after the broker came back")
            pinger_out, _ = pinger.communicate(timeout=OUTAGE + 45)
            sent, received = _ping_counts(pinger_out)
            assert received == sent, pinger_out
            assert env.pid == pid and env.host.agent_alive()
            assert fabric.ifindexes(env.host, watched) == ifindexes
            assert all(fabric.wired(vm) for vm in vms)
            # notifications flow again: consumers came back on the restarted broker; the
            # tap going down also shows that the link monitor sees events
            env.fake.ports[vms[2].port_id]["admin_state_up"] = False
            env.fake.cast(PORT_UPDATE_TOPIC, "port_update", port={"id": vms[2].port_id})
            wait_for(
                "port_update after the outage", lambda: vms[2].port_id in env.fake.devices_down()
            )
            wait_for(f"{vms[2].tap} set down", lambda: not tap_up(vms[2]))
            time.sleep(0.5)
            monitor.kill()
            events = monitor.communicate(timeout=5)[0].splitlines()
        first = next((i for i, line in enumerate(events) if vms[2].tap in line), None)
        assert first is not None, events  # the admin-down of the tap was seen
        touched = [line for line in events[:first] if any(n in line for n in ifindexes)]
        assert touched == []  # nothing before it: the outage and resync changed no link


def test_sigterm_with_broker_unreachable_exits(fabric: Fabric) -> None:
    """A stop blocked on a broker that never answers still ends: exit 0, data plane kept.

    Before, the main thread stayed in the source's first connect and SIGTERM never
    ended the process (11 minutes seen). Nothing listens on the relay's target port.
    """
    url = "rabbit://guest:guest@127.0.0.1:5672/"
    with neutron_host(fabric, url, url, _closed_port()) as env:
        env.start_agent()
        wait_for("connect failure logged", lambda: "Connection failed" in env.log(), timeout=30)
        process = env.host.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail("the agent did not exit 30 s after SIGTERM:\n" + env.host.log_tail())
        assert code == 0
        assert "exiting now; the data plane is left as it is" in env.log()


def test_sigterm_stops_in_order_within_the_deadline(env: NeutronHost, fabric: Fabric) -> None:
    """With the broker up, the orderly stop (all RPC servers at once) ends by itself."""
    vms = env.add_vms(1)
    env.start_agent()
    env.wait_converged(vms)
    process = env.host.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    log = env.log()
    assert "netagent-agent stopped" in log
    assert "exiting now" not in log
    assert fabric.wired(vms[0])  # the data plane is left as it is


def _closed_port() -> int:
    """A root-namespace TCP port nothing listens on (bound, never listened, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port

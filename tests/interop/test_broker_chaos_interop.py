"""Broker chaos under churn against the real neutron-server (issue 15 item 2).

A neutron-server of this module only (Neutron 29, on the session's Keystone) and two
simulated hosts running ``netagent-agent`` (Linux bridge, iptables firewall with the nft
backend) all use a private RabbitMQ node (:mod:`tests.fullstack.private_rabbit`; the
shared broker is never stopped). Three VM pairs ping every 50 ms on ports that never
change (two across the VXLAN network, one within host a), while a churn thread changes
other things through the REST API about once a second: ports bound to the hosts created
(tap plugged, as Nova does) and deleted, security group rules added and removed, ports'
allowed address pairs, groups and admin state changed. During the churn the node is
stopped (SIGTERM) for :data:`OUTAGE` seconds and started again, and later killed (SIGKILL)
and started again: both the server and the agents must reconnect by themselves. After
the stop the agents come back :data:`AGENTS_LATE` seconds after the server (their relays
to the node stay paused; as when their backoff or their network is slower): the server's
casts of that time are lost for them. A marker port on each host, which the churn never
touches, is set admin down then: unless the agents fetch everything again once they are
back, that change is lost for good (the churn may heal other lost changes by touching
the same port or group again later).

Afterwards: the agents were never restarted (same PIDs); no echo request was lost; every
port the churn did not touch since the broker came back has the status and wiring the
API says (the time until then is the convergence time printed); and at the end each
host's kernel state (links, bridge ports, forwarding entries, iptables/ip6tables/ebtables,
ipsets) equals what a fresh agent on an empty host builds from the API's final state
(networks, subnets, ports, groups and rules read back from the API). A notification the
server cast while an agent's queues were gone is lost on the broker; only the agent's
full resync after it noticed the outage brings that change in.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fullstack import churn, harness, kernel_state, private_rabbit
from tests.interop import cloud, neutron_server, services
from tests.interop.api import NeutronApi

HOSTS = {"chaos-a": "198.18.0.31", "chaos-b": "198.18.0.32"}
#: How long the broker is away after SIGTERM (issue 15: "stopped for 60 s").
OUTAGE = 60.0
#: After the stopped broker is back, its agents stay cut off from it this long more.
AGENTS_LATE = 10.0
#: Churn before each fault and after the last one.
SETTLE = 10.0
#: API changes per second.
RATE = 1.0
#: Bound for the agents to catch up after the broker is back, and for the final state.
CATCH_UP_TIMEOUT = 150.0
#: The churn's client gives up on a request after this long (the server may still do it).
CHURN_TIMEOUT = 15.0
BULK_PER_HOST = 4


@dataclasses.dataclass
class BrokerServices(services.Services):
    """The server's database, and the private node instead of a vhost on the shared broker."""

    rabbit: private_rabbit.PrivateRabbit | None = None
    with_vhost: bool = False

    @property
    def transport_url(self) -> str:
        assert self.rabbit is not None
        return self.rabbit.url

    def queue_consumers(self) -> dict[str, int]:
        assert self.rabbit is not None
        return {"q-reports-plugin": self.rabbit.consumers("q-reports-plugin")}


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[private_rabbit.PrivateRabbit]:
    reason = private_rabbit.unavailable()
    if reason:
        pytest.skip(reason)
    private_rabbit.remove_leftovers()
    node = private_rabbit.PrivateRabbit(tmp_path_factory.mktemp("chaos-rabbit"))
    try:
        node.start()
        yield node
    finally:
        node.close()


@pytest.fixture(scope="module")
def server(
    neutron: neutron_server.NeutronServer,
    rabbit: private_rabbit.PrivateRabbit,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[neutron_server.NeutronServer]:
    """A server of this module on the private node (as service user ``neutron-chaos``,
    outside the catalog, like the routers module's); depends on the session's server so
    that the shared virtualenv is held."""
    with neutron_server.second_server(
        neutron,
        tmp_path_factory.mktemp("neutron-chaos"),
        "neutron-chaos",
        "",
        broker=BrokerServices(rabbit=rabbit),
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(server: neutron_server.NeutronServer) -> NeutronApi:
    return server.api()


@pytest.fixture(scope="module")
def fabric(
    server: neutron_server.NeutronServer,
    rabbit: private_rabbit.PrivateRabbit,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[cloud.InteropFabric]:
    with cloud.running_fabric(
        server,
        tmp_path_factory.mktemp("chaos-fabric"),
        HOSTS,
        firewall_driver="iptables",
        broker_port=rabbit.port,
    ) as fab:
        yield fab


# -- the API's view ---------------------------------------------------------------------


def _ports(api: NeutronApi) -> list[dict[str, Any]]:
    return [p for p in api.ports(device_owner="compute:nova") if p["binding:host_id"] in HOSTS]


def _bound(port: dict[str, Any]) -> bool:
    return port.get("binding:vif_type") not in ("binding_failed", "unbound", None)


def _port_problem(port: dict[str, Any], links: dict[str, dict[str, Any]]) -> str | None:
    """How ``port``'s status in the API or its wiring on its host differs from what the
    API says it should be; ``None`` when both are right."""
    tap = links.get("tap" + port["id"][:11])
    if tap is None:
        return None if not _bound(port) else f"{port['id']}: bound but no tap"
    bridge = "brq" + port["network_id"][:11]
    wired = tap.get("master") == bridge and "UP" in tap.get("flags", [])
    want_up = _bound(port) and port["admin_state_up"]
    want_status = "ACTIVE" if want_up else "DOWN"
    if wired is not want_up or port["status"] != want_status:
        return (
            f"{port['id']}: status {port['status']} (want {want_status}), wired {wired}"
            f" (want {want_up}), vif_type {port.get('binding:vif_type')}"
        )
    return None


def _problems(
    api: NeutronApi, fabric: cloud.InteropFabric, skip: Callable[[str], bool]
) -> list[str]:
    out = [
        f"agent on {host} not alive"
        for host in HOSTS
        if not any(a["alive"] for a in api.agents(host=host, agent_type="Netagent agent"))
    ]
    links = {name: harness.links(host.netns) for name, host in fabric.hosts.items()}
    for port in _ports(api):
        if not skip(port["id"]):
            problem = _port_problem(port, links[port["binding:host_id"]])
            if problem:
                out.append(problem)
    return out


def _api_state(api: NeutronApi) -> dict[str, Any]:
    """The API's whole state as the file source reads it (the same Neutron shapes); a port
    whose binding failed is bound nowhere."""
    ports = []
    for port in api.ports():
        if not _bound(port):
            port = {**port, "binding:host_id": None}
        ports.append(port)
    return {
        "agents": [
            {
                "host": a["host"],
                "agent_type": a["agent_type"],
                "configurations": {"tunneling_ip": a["configurations"].get("tunneling_ip")},
            }
            for a in api.agents(agent_type="Netagent agent")
        ],
        "networks": api.get("/v2.0/networks")["networks"],
        "subnets": api.get("/v2.0/subnets")["subnets"],
        "ports": ports,
        "security_groups": api.get("/v2.0/security_groups")["security_groups"],
    }


def _comparable(dump: dict[str, Any]) -> dict[str, Any]:
    """``dump`` without the forwarding entries of single MACs on VXLAN devices: without
    l2population the Neutron source knows no remote MAC (each tunnel peer gets a stand-in
    port with a made-up one), the file source knows the remote ports' real MACs. The flood
    entries (00:00:00:00:00:00) that name the tunnel peers stay compared. (A security group
    chain's rules are compared as they are: the compiler sorts them, so the order in which
    Neutron's RPC and its REST API list a group's rules does not show.)
    """
    fdb = []
    for entry in dump["fdb"]:
        mac, device = entry.split()[:2]
        if not (device.startswith("nvx-") and mac != "00:00:00:00:00:00"):
            fdb.append(entry)
    return {**dump, "fdb": fdb}


# -- churn through the API --------------------------------------------------------------


class ApiChurner:
    """Changes the cloud through the REST API :data:`RATE` times a second, in a thread.

    Every request is recorded (operation, seconds, error); a request that fails or times
    out is not retried: whatever the server made of it is in the API's final state.
    ``touched`` says when each port was last changed, so that a convergence check can
    leave out the changes still in flight.
    """

    def __init__(
        self, api: NeutronApi, fabric: cloud.InteropFabric, cloud_ids: dict[str, Any]
    ) -> None:
        self.api, self.fabric, self.ids = api, fabric, cloud_ids
        self.rng = random.Random(15)
        #: port id -> host name of the ports the churn made (and may change or delete)
        self.ports: dict[str, str] = dict(cloud_ids["bulk"])
        self.touched: dict[str, float] = {}
        self.records: list[dict[str, Any]] = []
        self._extra_rule: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-churner", daemon=True)
        self._ops: list[Callable[[], None]] = [
            self.create_port,
            self.toggle_rule,
            self.change_address_pairs,
            self.move_port,
            self.delete_port,
            self.flip_admin_state,
        ]

    def __enter__(self) -> ApiChurner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(CHURN_TIMEOUT + 10)

    def _run(self) -> None:
        step, next_at = 0, time.monotonic()
        while not self._stop.is_set():
            op = self._ops[step % len(self._ops)]
            step += 1
            started = time.monotonic()
            error = None
            try:
                op()
            except Exception as exc:  # recorded: what the API did while the broker was away
                error = f"{type(exc).__name__}: {str(exc)[:200]}"
            self.records.append(
                {
                    "op": op.__name__,
                    "at": started,
                    "seconds": round(time.monotonic() - started, 2),
                    "error": error,
                }
            )
            next_at = max(next_at + 1.0 / RATE, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _touch(self, port_id: str) -> None:
        self.touched[port_id] = time.monotonic()

    def _pick(self) -> str:
        return self.rng.choice(sorted(self.ports))

    def create_port(self) -> None:
        host = self.rng.choice(sorted(HOSTS))
        port = _create_port(self.api, self.ids, host, self.rng.choice(self.ids["bulk_groups"]))
        self._touch(port["id"])
        self.ports[port["id"]] = host
        if _bound(port):  # Nova plugs the VIF of a bound port only
            churn.hypervisor_taps(self.fabric.hosts[host].netns, [churn.vmctl_tap(port["id"])])

    def delete_port(self) -> None:
        port_id = self._pick()
        self._touch(port_id)
        self.api.remove("port", port_id)
        host = self.ports.pop(port_id)
        tap = churn.vmctl_tap(port_id)
        if tap in harness.links(self.fabric.hosts[host].netns):
            churn.hypervisor_taps(self.fabric.hosts[host].netns, [tap], delete=True)

    def move_port(self) -> None:
        port_id = self._pick()
        self._touch(port_id)
        current = self.api.show("port", port_id)["security_groups"]
        others = [g for g in self.ids["bulk_groups"] if g not in current]
        self.api.update("port", port_id, security_groups=[self.rng.choice(others)])

    def flip_admin_state(self) -> None:
        port_id = self._pick()
        self._touch(port_id)
        up = self.api.show("port", port_id)["admin_state_up"]
        self.api.update("port", port_id, admin_state_up=not up)

    def change_address_pairs(self) -> None:
        port_id = self._pick()
        self._touch(port_id)
        pairs = self.api.show("port", port_id)["allowed_address_pairs"]
        address = f"203.0.113.{self.rng.randrange(1, 250)}"
        new = [] if pairs else [{"ip_address": address}]
        self.api.update("port", port_id, allowed_address_pairs=new)

    def toggle_rule(self) -> None:
        """Add a rule to a bulk group, or remove the one added last time."""
        if self._extra_rule is not None:
            rule, self._extra_rule = self._extra_rule, None
            self.api.remove("security_group_rule", rule)
            return
        created = self.api.create(
            "security_group_rule",
            security_group_id=self.rng.choice(self.ids["bulk_groups"]),
            direction="ingress",
            ethertype="IPv4",
            protocol="udp",
            port_range_min=(port := self.rng.randrange(1024, 65535)),
            port_range_max=port,
            remote_ip_prefix="198.51.100.0/24",
        )
        self._extra_rule = created["id"]

    def summary(self, start: float, end: float) -> dict[str, Any]:
        """Requests started in [start, end): how many, failed, and the slowest."""
        inside = [r for r in self.records if start <= r["at"] < end]
        return {
            "requests": len(inside),
            "failed": sum(1 for r in inside if r["error"]),
            "slowest_s": max((r["seconds"] for r in inside), default=0.0),
            "errors": sorted({str(r["error"])[:120] for r in inside if r["error"]})[:5],
        }


def _create_port(api: NeutronApi, ids: dict[str, Any], host: str, group: str) -> dict[str, Any]:
    return api.compute_port(ids["network"], host, security_groups=[group])


# -- the scenario -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cloud_ids(api: NeutronApi, fabric: cloud.InteropFabric) -> dict[str, Any]:
    """Network, groups, the VM pairs (wired, ACTIVE, pinging) and the bulk ports."""
    for host in HOSTS:
        neutron_server.wait_until(
            f"agent on {host} alive",
            lambda host=host: any(
                a["alive"] for a in api.agents(host=host, agent_type="Netagent agent")
            ),
            timeout=60,
        )
    net = api.plain_network("chaos")
    traffic = api.create("security_group", name="chaos-traffic")
    api.create(
        "security_group_rule",
        security_group_id=traffic["id"],
        direction="ingress",
        ethertype="IPv4",
        protocol="icmp",
    )
    bulk_groups = []
    for n in range(2):
        group = api.create("security_group", name=f"chaos-bulk-{n}")
        api.create(
            "security_group_rule",
            security_group_id=group["id"],
            direction="ingress",
            ethertype="IPv4",
            protocol="tcp",
            port_range_min=22,
            port_range_max=22,
            remote_group_id=group["id"],
        )
        bulk_groups.append(group["id"])
    ids: dict[str, Any] = {"network": net["id"], "bulk_groups": bulk_groups}
    hosts = [fabric.hosts[h] for h in HOSTS]
    pairs = []
    for n, (host_a, host_b) in enumerate(
        [(hosts[0], hosts[1]), (hosts[1], hosts[0]), (hosts[0], hosts[0])]
    ):
        vms = []
        for end, host in (("s", host_a), ("d", host_b)):
            port = _create_port(api, {**ids}, host.name, traffic["id"])
            assert _bound(port), port
            vms.append(fabric.add_neutron_vm(f"{end}{n}", host, port, mtu=net["mtu"]))
        pairs.append((vms[0], vms[1]))
    bulk, markers = {}, []
    for host in hosts:
        for n in range(BULK_PER_HOST + 1):
            port = _create_port(api, ids, host.name, bulk_groups[n % 2])
            churn.hypervisor_taps(host.netns, [churn.vmctl_tap(port["id"])])
            if n < BULK_PER_HOST:
                bulk[port["id"]] = host.name
            else:
                markers.append(port["id"])
    ids["pairs"], ids["bulk"], ids["markers"] = pairs, bulk, markers
    neutron_server.wait_until(
        "every port wired and ACTIVE",
        lambda: not _problems(api, fabric, lambda _: False),
        timeout=90,
        interval=0.5,
    )
    for a, b in pairs:
        fabric.wait_ping(a, b, timeout=30)
    return ids


def _catch_up(
    api: NeutronApi,
    fabric: cloud.InteropFabric,
    churner: ApiChurner,
    since: float,
    final: bool = False,
) -> float:
    """Seconds from ``since`` until both agents are alive and every port the churn has not
    touched since then (every port at all if ``final``) has its status and wiring as the
    API says."""

    def in_flight(port_id: str) -> bool:
        if final:
            return False
        return churner.touched.get(port_id, 0.0) >= since or port_id not in _known(churner)

    last: list[str] = []

    def caught_up() -> bool:
        last[:] = _problems(api, fabric, in_flight)
        return not last

    try:
        neutron_server.wait_until("agents caught up", caught_up, CATCH_UP_TIMEOUT, 0.5)
    except TimeoutError:
        raise AssertionError("not caught up:\n" + "\n".join(last[:20])) from None
    return round(time.monotonic() - since, 1)


def _known(churner: ApiChurner) -> set[str]:
    ids = churner.ids
    vms = {vm.port_id for pair in ids["pairs"] for vm in pair}
    return set(churner.ports) | vms | set(ids["markers"])


def _plug_missing_taps(api: NeutronApi, fabric: cloud.InteropFabric) -> None:
    """Ports a timed-out create made after all (the churn never saw their ids): plugged
    late, as Nova would on a retried boot."""
    for port in _ports(api):
        host = fabric.hosts[port["binding:host_id"]]
        tap = churn.vmctl_tap(port["id"])
        if _bound(port) and tap not in harness.links(host.netns):
            churn.hypervisor_taps(host.netns, [tap])


def test_broker_stopped_and_killed_under_churn_loses_nothing(
    api: NeutronApi,
    server: neutron_server.NeutronServer,
    rabbit: private_rabbit.PrivateRabbit,
    fabric: cloud.InteropFabric,
    cloud_ids: dict[str, Any],
    tmp_path: Path,
) -> None:
    pids = {name: host.process.pid for name, host in fabric.hosts.items() if host.process}
    pairs = cloud_ids["pairs"]
    churn_api = NeutronApi(api.base_url, api.token, timeout=CHURN_TIMEOUT)
    figures: dict[str, Any] = {}
    with (
        churn.Pingers(pairs, tmp_path) as pingers,
        ApiChurner(churn_api, fabric, cloud_ids) as churner,
    ):
        time.sleep(SETTLE)
        stopped = time.monotonic()
        for relay in fabric.relays:
            relay.pause()
        rabbit.stop()
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - stopped)))
        rabbit.start()
        server_back = time.monotonic()
        figures["outage_s"] = round(server_back - stopped, 1)
        figures["api_while_stopped"] = churner.summary(stopped, server_back)
        # the agents come back after the server: what it casts meanwhile is lost for
        # them (their queues went with the broker), only their resync brings it in
        # one change the churn never makes again: lost unless the agents resync
        for marker in cloud_ids["markers"]:
            api.update("port", marker, admin_state_up=False)
        time.sleep(max(0.0, AGENTS_LATE - (time.monotonic() - server_back)))
        for relay in fabric.relays:
            relay.resume()
        back = time.monotonic()
        figures["api_while_agents_away"] = churner.summary(server_back, back)
        figures["catch_up_after_restart_s"] = _catch_up(api, fabric, churner, back)
        time.sleep(SETTLE)
        killed = time.monotonic()
        rabbit.kill()
        rabbit.start()
        back = time.monotonic()
        figures["killed_s"] = round(back - killed, 1)
        figures["api_while_killed"] = churner.summary(killed, back)
        figures["catch_up_after_kill_s"] = _catch_up(api, fabric, churner, back)
        time.sleep(SETTLE)
    # the final state: quiet, every port plugged that the API has
    _plug_missing_taps(api, fabric)
    final_from = time.monotonic()
    figures["final_state_s"] = _catch_up(api, fabric, churner, final_from, final=True)
    time.sleep(1)
    pingers.stop()
    traffic = pingers.results()
    figures["changes"] = churner.summary(0.0, time.monotonic())
    figures["pings_sent"] = sum(t["sent"] or 0 for t in traffic)
    figures["pings_lost"] = sum(t["lost"] for t in traffic)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print("broker chaos figures: " + json.dumps(figures))
    assert {n: h.process.pid for n, h in fabric.hosts.items() if h.process} == pids
    assert all(h.agent_alive() for h in fabric.hosts.values())
    for pair in traffic:
        assert pair["answered"] > 1000, pair  # traffic flowed the whole time
        assert pair["lost"] == 0, pair
    # the churn ran across both faults, with every kind of change
    assert {r["op"] for r in churner.records if not r["error"]} == {
        op.__name__ for op in churner._ops
    }
    # each host's kernel equals what a fresh agent builds from the API's final state
    fabric.state_file.write_text(json.dumps(_api_state(api), indent=1))
    for name in HOSTS:
        host = fabric.hosts[name]
        churned = _comparable(kernel_state.dump(host.netns))
        fresh = _comparable(churn.fresh_dump(fabric, host, timeout=60))
        differences = kernel_state.differences(churned, fresh)
        assert differences == [], f"{name}:\n" + "\n".join(differences[:40])

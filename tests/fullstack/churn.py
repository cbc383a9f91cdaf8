"""Steady churn on a host of many ports: the scenario the reliability suite and its tools share.

``tools/bench/restart_churn.py`` and ``tools/soak.py`` run it at 1,000 ports for the
figures; ``test_restart_churn.py`` and ``test_soak.py`` run the same code at a small scale
in CI. Layout (built on :class:`harness.Fabric`)::

    host-a: the agent under test, ``ports`` ports in ``networks`` VXLAN networks: the
            hypervisor's persistent taps (as libvirt leaves them) for the bulk, and the
            taps of ``pairs`` + ``pairs // 2`` VMs (namespaces that send traffic)
    host-b: a second agent with the other end of every even pair (traffic over VXLAN);
            odd pairs have both ends on host-a (traffic through one bridge)

Every port has the iptables firewall (nft backend). The sample VMs are in the group
``traffic`` (ICMP from the group itself); the bulk ports are in ``bulk-0..3`` (TCP 22
from the own group). A :class:`Churner` thread then changes the desired state at a steady
rate, cycling through: a port added (tap first, as Nova does), a port's group changed
(ipset members move), a rule added to or removed from a bulk group, a port deleted (tap
removed after), a port's admin state flipped, a rule added to or removed from the sample
VMs' own group (their chains rewritten under traffic), and a port's allowed address pairs
changed. Adds and deletes alternate, and every other update is undone by the next of its
kind (a rule added then removed, a port set down then up, address pairs given then taken),
so the desired state does not drift: a soak's counts must stay flat. The sample VMs' ports
themselves never change: their traffic must never stop.

Checks: ``kernel_state.dump`` reads the host's whole netagent-relevant kernel state
(links and bridge ports, forwarding and neighbour entries, iptables/ip6tables/ebtables,
ipsets) in a normalized form; :func:`fresh_dump` builds the same final state with a fresh
agent on an empty host for comparison; :class:`Pingers` counts lost echo requests per
pair; ``trends.sample_resources`` and ``trends.trend`` give the soak its figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.fullstack import harness, kernel_state, trends
from tests.fullstack.harness import Fabric, Host, Vm

TRAFFIC_SG = str(uuid.uuid5(uuid.NAMESPACE_URL, "netagent-churn-traffic"))
BULK_SGS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"netagent-churn-bulk-{g}")) for g in range(4)]
FIREWALL_CONFIG = "[agent]\nfirewall_driver = iptables\n[iptables]\nbackend = nft\n"
PING_INTERVAL = 0.05


@dataclasses.dataclass(frozen=True)
class Scale:
    """How big the host is and how fast it changes."""

    ports: int = 1000
    networks: int = 10
    pairs: int = 20
    #: desired-state changes per second
    rate: float = 2.0

    def __post_init__(self) -> None:
        if self.networks > 16 or self.ports < 2 * self.pairs:
            raise ValueError("at most 16 networks, and ports >= 2 * pairs")


def _cidr(index: int) -> ipaddress.IPv4Network:
    """The subnet of network ``index``: 198.19.(16 * index).0/20 (4,094 addresses)."""
    return ipaddress.IPv4Network(f"198.19.{16 * index}.0/20")


class ChurnFabric(Fabric):
    """A fabric with per-network subnets and security groups, and a steady churn."""

    def __init__(self, workdir: Path, scale: Scale, seed: int = 1) -> None:
        super().__init__(workdir)
        self.scale = scale
        self.rng = random.Random(seed)
        self.net_ids: list[str] = []
        self.next_address: dict[str, int] = {}
        self.rules: dict[str, list[dict[str, Any]]] = {}
        #: port ids of the bulk ports on host-a (the churn's playground)
        self.bulk: list[str] = []
        self.pairs: list[tuple[Vm, Vm]] = []
        self._mac_counter = 0
        self.lock = threading.Lock()

    # -- desired state ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        with self.lock:
            doc = super().state()
            for subnet in doc["subnets"]:
                subnet["cidr"] = str(_cidr(self.net_ids.index(subnet["network_id"])))
            doc["security_groups"] = [
                {"id": sg, "name": f"churn-{n}", "security_group_rules": list(rules)}
                for n, (sg, rules) in enumerate(self.rules.items())
            ]
            doc["ports"] = [dict(p) for p in doc["ports"]]
        return doc

    def allocate(self, network_id: str) -> str:
        index = self.next_address[network_id]
        self.next_address[network_id] = index + 1
        return str(_cidr(self.net_ids.index(network_id))[index])

    def _mac(self) -> str:
        self._mac_counter += 1
        return "fa:16:3f:" + ":".join(f"{b:02x}" for b in self._mac_counter.to_bytes(3, "big"))

    def bulk_port(self, network_id: str, group: str) -> dict[str, Any]:
        port_id = str(uuid.uuid4())
        return {
            "id": port_id,
            "network_id": network_id,
            "mac_address": self._mac(),
            "fixed_ips": [
                {"subnet_id": self._subnet_id(network_id), "ip_address": self.allocate(network_id)}
            ],
            "binding:host_id": "host-a",
            "device_owner": "compute:nova",
            "admin_state_up": True,
            "security_groups": [group],
        }

    # -- build ------------------------------------------------------------------------

    def build(self) -> tuple[Host, Host]:
        """Hosts, networks, VMs, bulk taps and state; agents started and converged."""
        host_a = self.add_host("host-a", "198.18.0.1")
        host_b = self.add_host("host-b", "198.18.0.2")
        for index in range(self.scale.networks):
            net = self.add_network(4100 + index)
            self.net_ids.append(net)
            self.next_address[net] = 10
        self.rules[TRAFFIC_SG] = [_rule("egress"), _rule("ingress", "icmp", group=TRAFFIC_SG)]
        for sg in BULK_SGS:
            self.rules[sg] = [_rule("egress"), _rule("ingress", "tcp", 22, group=sg)]
        for i in range(self.scale.pairs):
            net = self.net_ids[i % len(self.net_ids)]
            a = self.add_vm(f"a{i}", host_a, net, "")
            b = self.add_vm(f"b{i}", host_b if i % 2 == 0 else host_a, net, "")
            self.pairs.append((a, b))
        for vm in self.vms.values():
            self.ports[vm.port_id]["security_groups"] = [TRAFFIC_SG]
        on_a = sum(1 for vm in self.vms.values() if vm.host is host_a)
        taps = []
        for n in range(self.scale.ports - on_a):
            port = self.bulk_port(self.net_ids[n % len(self.net_ids)], BULK_SGS[n % 4])
            self.ports[port["id"]] = port
            self.bulk.append(port["id"])
            taps.append(vmctl_tap(port["id"]))
        hypervisor_taps(host_a.netns, taps)
        self.write_state()
        for host in (host_a, host_b):
            host.write_config(self.state_file, FIREWALL_CONFIG)
            host.start_agent()
        for host in (host_a, host_b):
            wait_converged(host, timeout=60 + self.scale.ports / 10)
        for a, b in self.pairs:
            self.wait_ping(a, b, timeout=30)
        return host_a, host_b

    def add_vm(  # type: ignore[override]
        self, name: str, host: Host, network_id: str, ip_cidr: str, **kwargs: Any
    ) -> Vm:
        cidr = ip_cidr or f"{self.allocate(network_id)}/20"
        return super().add_vm(name, host, network_id, cidr, **kwargs)

    def sample_ports(self) -> set[str]:
        return {vm.port_id for vm in self.vms.values()}


def _rule(
    direction: str, protocol: str | None = None, port: int | None = None, *,
    group: str | None = None, prefix: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    rule: dict[str, Any] = {"id": str(uuid.uuid4()), "direction": direction, "ethertype": "IPv4"}
    if protocol:
        rule["protocol"] = protocol
    if port is not None:
        rule["port_range_min"] = rule["port_range_max"] = port
    if group:
        rule["remote_group_id"] = group
    if prefix:
        rule["remote_ip_prefix"] = prefix
    return rule


def vmctl_tap(port_id: str) -> str:
    name: str = harness.vmctl.tap_name(port_id)
    return name


def hypervisor_taps(netns: str, taps: list[str], delete: bool = False) -> None:
    """Persistent taps, up and not enslaved, as libvirt leaves them (or deleted)."""
    if not taps:
        return
    if delete:
        lines = [f"link del {t}" for t in taps]
    else:
        lines = [f"tuntap add dev {t} mode tap" for t in taps] + [f"link set {t} up" for t in taps]
    subprocess.run(
        ["ip", "-n", netns, "-batch", "-"],
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


# -- churn ----------------------------------------------------------------------------


class Churner:
    """Changes the desired state ``scale.rate`` times a second in a thread of its own."""

    def __init__(self, fabric: ChurnFabric, host: Host) -> None:
        self.fabric, self.host = fabric, host
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churner", daemon=True)
        self._step = 0
        self._extra_rules: dict[str, list[str]] = {}
        #: kind of update -> the port it changed, to be changed back next time
        self._changed: dict[str, str] = {}
        self._ops: list[Callable[[], None]] = [
            self.add_port,
            self.move_port,
            self.toggle_bulk_rule,
            self.delete_port,
            self.flip_admin_state,
            self.toggle_traffic_rule,
            self.change_address_pairs,
        ]

    def __enter__(self) -> Churner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    @property
    def changes(self) -> int:
        return sum(self.counts.values())

    def _run(self) -> None:
        period = 1.0 / self.fabric.scale.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            op = self._ops[self._step % len(self._ops)]
            self._step += 1
            try:
                op()
                self.fabric.write_state()
                self.counts[op.__name__] = self.counts.get(op.__name__, 0) + 1
            except Exception as exc:  # a broken churn must fail the run, not hang it
                self.errors.append(f"{op.__name__}: {type(exc).__name__}: {exc}")
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _pick(self) -> dict[str, Any]:
        """A bulk port none of the undo-able updates holds changed."""
        fab = self.fabric
        while True:
            port_id = fab.rng.choice(fab.bulk)
            if port_id not in self._changed.values():
                return fab.ports[port_id]

    def _undo_or_change(self, kind: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply ``change`` to a port, or to the port it changed last time (undoing it):
        every update is undone by the next of its kind, so the churn has no drift."""
        port_id = self._changed.pop(kind, None)
        if port_id is None:
            port = self._pick()
            self._changed[kind] = port["id"]
        else:
            port = self.fabric.ports[port_id]
        with self.fabric.lock:
            change(port)

    def add_port(self) -> None:
        fab = self.fabric
        port = fab.bulk_port(fab.rng.choice(fab.net_ids), fab.rng.choice(BULK_SGS))
        hypervisor_taps(self.host.netns, [vmctl_tap(port["id"])])
        with fab.lock:
            fab.ports[port["id"]] = port
        fab.bulk.append(port["id"])

    def delete_port(self) -> None:
        fab = self.fabric
        port = self._pick()
        with fab.lock:
            del fab.ports[port["id"]]
        fab.bulk.remove(port["id"])
        fab.write_state()
        hypervisor_taps(self.host.netns, [vmctl_tap(port["id"])], delete=True)

    def move_port(self) -> None:
        port = self._pick()
        groups = [g for g in BULK_SGS if g not in port["security_groups"]]
        with self.fabric.lock:
            port["security_groups"] = [self.fabric.rng.choice(groups)]

    def flip_admin_state(self) -> None:
        def flip(port: dict[str, Any]) -> None:
            port["admin_state_up"] = not port["admin_state_up"]

        self._undo_or_change("admin", flip)

    def change_address_pairs(self) -> None:
        address = f"203.0.113.{self.fabric.rng.randrange(1, 250)}"

        def change(port: dict[str, Any]) -> None:
            pairs = [] if port.get("allowed_address_pairs") else [{"ip_address": address}]
            port["allowed_address_pairs"] = pairs

        self._undo_or_change("pairs", change)

    def _toggle_rule(self, group: str, rule: dict[str, Any]) -> None:
        """Add ``rule`` to ``group``, or remove the rule added last time: at most one."""
        extra = self._extra_rules.setdefault(group, [])
        with self.fabric.lock:
            rules = self.fabric.rules[group]
            if extra:
                gone = extra.pop(0)
                rules[:] = [r for r in rules if r["id"] != gone]
            else:
                rules.append(rule)
                extra.append(rule["id"])

    def toggle_bulk_rule(self) -> None:
        group = next((g for g in BULK_SGS if self._extra_rules.get(g)), None)
        group = group or self.fabric.rng.choice(BULK_SGS)
        port = self.fabric.rng.randrange(1024, 65535)
        self._toggle_rule(group, _rule("ingress", "udp", port, prefix="198.51.100.0/24"))

    def toggle_traffic_rule(self) -> None:
        port = self.fabric.rng.randrange(1024, 65535)
        self._toggle_rule(TRAFFIC_SG, _rule("ingress", "tcp", port, prefix="203.0.113.0/24"))


# -- traffic --------------------------------------------------------------------------


class Pingers:
    """One ``ping`` per pair (every :data:`PING_INTERVAL` s), stopped by PID with SIGINT.

    A request counts as lost when a later one was answered and it was not; the requests
    after the last answer are in flight when the pinger stops (and the run is converged
    and quiet by then, so a real outage at the end shows as a run of losses before it).
    """

    _REPLY = re.compile(r"icmp_seq=(\d+) ")
    _SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")

    def __init__(self, pairs: list[tuple[Vm, Vm]], workdir: Path) -> None:
        self.pairs, self.workdir = pairs, workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Pingers:
        for n, (a, b) in enumerate(self.pairs):
            out = (self.workdir / f"ping-{n}.txt").open("wb")
            argv = ["ip", "netns", "exec", a.netns, "ping", "-n", "-i", str(PING_INTERVAL)]
            self.procs.append(
                subprocess.Popen([*argv, "-W", "1", b.address], stdout=out, stderr=out)
            )
            out.close()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def results(self) -> list[dict[str, Any]]:
        """Per pair: requests sent, answered, and the sequence numbers lost."""
        out = []
        for n, (a, b) in enumerate(self.pairs):
            text = (self.workdir / f"ping-{n}.txt").read_text(errors="replace")
            seqs = {int(m) for m in self._REPLY.findall(text)}
            summary = self._SUMMARY.search(text)
            last = max(seqs, default=0)
            lost = sorted(set(range(1, last + 1)) - seqs)
            out.append(
                {
                    "pair": f"{a.name}->{b.name}",
                    "cross_host": a.host is not b.host,
                    "sent": int(summary.group(1)) if summary else None,
                    "answered": len(seqs),
                    "lost": len(lost),
                    "lost_seqs": lost[:20],
                }
            )
        return out


# -- status and restart ---------------------------------------------------------------


def status(host: Host) -> dict[str, Any] | None:
    proc = harness.run(
        str(harness.BIN / "netagent-status"), "--state-path", str(host.state_path),
        "--json", "--timeout", "2", check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        return None
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def wait_converged(host: Host, timeout: float) -> float:
    """Seconds until the agent's status says converged."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not host.agent_alive():
            raise AssertionError(f"agent of {host.name} died:\n{host.log_tail()}")
        doc = status(host)
        if doc and doc.get("converged"):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{host.name} not converged after {timeout:.0f}s:\n{host.log_tail()}")


def wait_applied(fabric: ChurnFabric, host: Host, timeout: float) -> float:
    """Seconds until ``host``'s agent is converged on the fabric's current desired state.

    "Converged" alone may describe an older version of the state file (the file source
    polls it); so the agent's ports and their admin states must also be those of the
    current desired state. Callers make their last write add a port, which no older
    version has.
    """
    expected = {
        pid: port.get("admin_state_up", True)
        for pid, port in fabric.ports.items()
        if port["binding:host_id"] == host.name
    }
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not host.agent_alive():
            raise AssertionError(f"agent of {host.name} died:\n{host.log_tail()}")
        doc = status(host)
        if doc and doc.get("converged"):
            seen = {p["id"]: p["admin_state_up"] for p in doc.get("ports", [])}
            if seen == expected:
                return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{host.name} not converged on the final state:\n{host.log_tail()}")


def kill_and_restart(
    fabric: ChurnFabric, host: Host, timeout: float, down: float = 1.0
) -> dict[str, Any]:
    """SIGKILL the agent, leave it dead ``down`` seconds, start it, wait until caught up.

    Under churn "converged" (nothing pending at all) may never be seen: a pass at 1,000
    ports takes longer than the gap between two changes. So the agent has *caught up* when
    every port desired when it started, and still desired, is reported converged (filtered
    and wired as its current version says).

    :returns: seconds to the first full sync and to caught up, and the links that exist
        before and after but with a new ifindex (deleted and created again) or a new master.
    """
    before = harness.links(host.netns)
    host.stop_agent(signal.SIGKILL)
    time.sleep(down)
    with fabric.lock:
        wanted = {pid for pid, p in fabric.ports.items() if p["binding:host_id"] == host.name}
    started = time.monotonic()
    host.start_agent()
    ready = None
    while True:
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            raise AssertionError(f"{host.name} not caught up after {timeout:.0f}s")
        if not host.agent_alive():
            raise AssertionError(f"agent of {host.name} died:\n{host.log_tail()}")
        doc = status(host)
        if doc and doc.get("ready"):
            ready = elapsed if ready is None else ready
            with fabric.lock:
                still = wanted & fabric.ports.keys()
            done = {p["id"] for p in doc.get("ports", []) if p.get("converged")}
            if still <= done:
                break
        time.sleep(0.1)
    after = harness.links(host.netns)
    common = (before.keys() & after.keys()) - set(kernel_state.HOST_LINKS)
    return {
        "seconds_to_first_full_sync": round(ready, 2),
        "seconds_to_caught_up": round(elapsed, 2),
        "links_recreated": sorted(n for n in common if index(before, n) != index(after, n)),
        # a tap the churn added while the agent was down has no master before: not rewired
        "links_rewired": sorted(
            n for n in common if master(before, n) and master(before, n) != master(after, n)
        ),
    }


def index(links: dict[str, dict[str, Any]], name: str) -> int:
    return int(links[name]["ifindex"])


def master(links: dict[str, dict[str, Any]], name: str) -> str | None:
    return links[name].get("master")


def fresh_dump(fabric: Fabric, host: Host, timeout: float) -> dict[str, Any]:
    """What a fresh agent on an empty host builds for the desired state in the fabric's
    state file.

    A new host namespace with the same underlay address and the same taps (name, MAC,
    MTU, up) as ``host`` has, a copy of the state file, an agent with the same
    configuration and an empty state_path; its dump once converged. The agent is stopped
    (its namespace goes with the fabric).
    """
    netns = fabric._netns(f"fresh-{host.name}")
    workdir = fabric.workdir / f"fresh-{host.name}"
    workdir.mkdir(exist_ok=True)
    harness.ip(netns, "link", "add", "eth-ul", "type", "veth", "peer", "name", "eth-ul-peer")
    address = f"{host.tunnel_ip}/{harness.UNDERLAY_PREFIX}"
    harness.ip(netns, "addr", "add", address, "dev", "eth-ul")
    harness.ip(netns, "link", "set", "eth-ul", "up")
    lines = []
    for name, link in harness.links(host.netns).items():
        if name.startswith("tap"):
            lines += [
                f"tuntap add dev {name} mode tap",
                f"link set {name} address {link['address']} mtu {link['mtu']} up",
            ]
    subprocess.run(
        ["ip", "-n", netns, "-batch", "-"], input="\n".join(lines) + "\n", text=True,
        check=True, capture_output=True,
    )  # fmt: skip
    state_file = workdir / "state.json"
    shutil.copyfile(fabric.state_file, state_file)
    fresh = Host(host.name, netns, host.tunnel_ip, workdir)
    fabric.hosts[f"{host.name}-fresh"] = fresh
    fresh.write_config(state_file, FIREWALL_CONFIG)
    fresh.start_agent()
    try:
        wait_converged(fresh, timeout)
        return kernel_state.dump(netns)
    finally:
        fresh.stop_agent(signal.SIGTERM)


def stale_ports(fabric: ChurnFabric, host: Host) -> int:
    """Ports the agent's status and the desired state do not agree on (either way): a few
    changes in flight under churn, a growing number when the agent falls behind."""
    with fabric.lock:
        wanted = {pid for pid, p in fabric.ports.items() if p["binding:host_id"] == host.name}
    doc = status(host) or {}
    return len(wanted ^ {p["id"] for p in doc.get("ports", [])})


# -- the scenarios ----------------------------------------------------------------------


@contextlib.contextmanager
def churn_fabric(workdir: Path, scale: Scale, seed: int = 1) -> Iterator[ChurnFabric]:
    """A built :class:`ChurnFabric` (agents converged, pairs pinging), closed on exit."""
    fabric = ChurnFabric(workdir, scale, seed)
    try:
        fabric.start()
        yield fabric
    finally:
        fabric.close()


def restart_under_churn(
    fabric: ChurnFabric,
    restarts: int,
    settle: float,
    emit: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """Issue 15 item 1 on a built fabric: ``restarts`` SIGKILLs of host-a's agent under
    churn with traffic; returns the figures and checks (the caller asserts or prints).

    :param settle: seconds of churn before each kill and after the last restart.
    """
    host_a, host_b = fabric.hosts["host-a"], fabric.hosts["host-b"]
    timeout = 60 + fabric.scale.ports / 10
    restarts_out = []
    with Pingers(fabric.pairs, fabric.workdir) as pingers:
        with Churner(fabric, host_a) as churner:
            for n in range(restarts):
                time.sleep(settle)
                result = {"restart": n + 1, **kill_and_restart(fabric, host_a, timeout)}
                result["changes_so_far"] = churner.changes
                emit({"phase": "restart", "ports": fabric.scale.ports, **result})
                restarts_out.append(result)
            time.sleep(settle)
        churner.add_port()  # the marker of the final state (see wait_applied)
        fabric.write_state()
        final_seconds = wait_applied(fabric, host_a, timeout)
        wait_converged(host_b, timeout)
        time.sleep(1)  # a last round of echoes after the last change
    traffic = pingers.results()
    churned = kernel_state.dump(host_a.netns)
    sample_ports = fabric.sample_ports()
    final_ports = sum(1 for p in fabric.ports.values() if p["binding:host_id"] == "host-a")
    fresh = fresh_dump(fabric, host_a, timeout)
    return {
        "ports_at_end": final_ports,
        "sample_ports": len(sample_ports),
        "seconds_to_final_state": round(final_seconds, 2),
        "changes": churner.counts,
        "churn_errors": churner.errors,
        "restarts": restarts_out,
        "traffic": traffic,
        "lost": sum(t["lost"] for t in traffic),
        "answered": sum(t["answered"] for t in traffic),
        "dump_sizes": {k: len(v) for k, v in churned.items()},
        "differences": kernel_state.differences(churned, fresh),
    }


def soak(
    fabric: ChurnFabric,
    seconds: float,
    warmup: float,
    interval: float = 10.0,
    emit: Callable[[dict[str, Any]], None] = lambda _: None,
) -> dict[str, Any]:
    """Issue 15 item 7 on a built fabric: churn for ``warmup`` + ``seconds``, sampling
    host-a's agent and kernel every ``interval`` s after the warm-up; the trends."""
    host_a = fabric.hosts["host-a"]
    samples: list[tuple[float, dict[str, float]]] = []
    with Churner(fabric, host_a) as churner:
        time.sleep(warmup)
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            values = trends.sample_resources(host_a)
            values["stale_ports"] = float(stale_ports(fabric, host_a))
            samples.append((elapsed, values))
            emit({"phase": "sample", "t": round(elapsed, 1), **values})
            if elapsed >= seconds or not host_a.agent_alive():
                break
            time.sleep(max(0.0, interval - (time.monotonic() - started - elapsed)))
    return {
        "ports": fabric.scale.ports,
        "seconds": round(samples[-1][0], 1),
        "samples": len(samples),
        "changes": churner.changes,
        "churn_errors": churner.errors,
        "agent_alive": host_a.agent_alive(),
        "trend": trends.trend(samples),
    }


# -- the command line of tools/soak.py and tools/bench/restart_churn.py ----------------


def emit_json(doc: dict[str, Any]) -> None:
    print(json.dumps(doc), flush=True)


def cli(
    doc: str,
    prefix: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    scenario: Callable[[ChurnFabric, argparse.Namespace], dict[str, Any]],
    verdict: Callable[[dict[str, Any], argparse.Namespace], bool],
) -> int:
    """Parse ``--ports/--networks/--pairs/--rate/--keep`` and the tool's own arguments,
    run ``scenario`` on a built fabric in a fresh work directory, then ``verdict`` on its
    result (after the fabric is closed; it emits the summary and says whether the goals
    were met). The work directory is kept on failure or with ``--keep``.

    :returns: the exit status, 0 when ``verdict`` is true.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--rate", type=float, default=2.0, help="changes per second")
    add_arguments(parser)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    # SIGINT or SIGTERM stop the tool with everything removed, also when it was started in
    # the background (where the shell leaves SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    scale = Scale(args.ports, args.networks, args.pairs, args.rate)
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    ok = False
    try:
        with churn_fabric(workdir, scale) as fabric:
            fabric.build()
            result = scenario(fabric, args)
        ok = verdict(result, args)
    finally:
        if args.keep or not ok:
            print(f"work directory: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1

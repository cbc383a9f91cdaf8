"""Simulated hosts for the fullstack tier: namespaces, an underlay, agents, VMs, state.

A :class:`Fabric` owns everything it creates (namespaces by name, agent processes by PID)
and :meth:`Fabric.close` removes all of it, even after a failure half-way through. Layout::

    underlay ns  ── bridge ul0 ──┬── veth ── host-a ns (eth-ul 198.18.0.1/15, netagent-agent)
                                 └── veth ── host-b ns (eth-ul 198.18.0.2/15, netagent-agent)
    vm ns (eth0) ── veth ── tap<port-id> in its host ns (made by tools/vmctl.py)

Only addresses from 198.18.0.0/15 (underlay) and 192.0.2.0/24 (VMs) are used, and only
inside these namespaces. The root namespace is never changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.common import traffic
from tests.common.vmctl import vmctl

BIN = Path(sys.executable).parent
NETNS_PREFIX = "nafs-"
UNDERLAY_BRIDGE = "ul0"
UNDERLAY_PREFIX = 15
#: Run agents as this user (name or uid) with only these ambient capabilities, the way
#: the systemd unit does (``NETAGENT_FULLSTACK_AGENT_USER``; unset: as root).
AGENT_USER = os.environ.get("NETAGENT_FULLSTACK_AGENT_USER") or None
AGENT_CAPS = ("net_admin", "net_raw", "sys_admin")


def agent_ids(user: str) -> tuple[int, int]:
    """(uid, gid) of ``user`` (a name or a number)."""
    import pwd  # noqa: PLC0415

    entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def unprivileged(user: str | tuple[int, int], argv: list[str]) -> list[str]:
    """``argv`` run as ``user`` (a name or number, or (uid, gid)) with :data:`AGENT_CAPS`
    as its only (ambient) capabilities and bounding set: what ``User=`` plus
    ``AmbientCapabilities=`` give a systemd unit."""
    uid, gid = agent_ids(user) if isinstance(user, str) else user
    caps = ",".join(f"+{cap}" for cap in AGENT_CAPS)
    return [
        "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
        f"--inh-caps=-all,{caps}", f"--ambient-caps=-all,{caps}",
        f"--bounding-set=-all,{caps}", "--", *argv,
    ]  # fmt: skip


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; raise with its stderr on failure."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def ip(netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("ip", "-n", netns, *args, check=check)


def links(netns: str) -> dict[str, dict[str, Any]]:
    """``ip -d -j link show`` in ``netns``, by name (with ``master`` and ``linkinfo``)."""
    out = ip(netns, "-d", "-j", "link", "show").stdout
    return {item["ifname"]: item for item in json.loads(out or "[]")}


def fdb(netns: str, device: str) -> set[tuple[str, str]]:
    """(mac, dst) pairs of the VXLAN device's own FDB entries."""
    out = run("bridge", "-n", netns, "-j", "fdb", "show", "dev", device).stdout
    return {(e["mac"], e["dst"]) for e in json.loads(out or "[]") if "dst" in e}


def wait_for(
    what: str, predicate: Callable[[], bool], timeout: float = 20.0, interval: float = 0.2
) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except (RuntimeError, KeyError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def ping(
    netns: str, address: str, count: int = 3, interval: float = 0.2, deadline: int = 5
) -> subprocess.CompletedProcess[str]:
    """Bounded ping from a namespace.

    With both ``-c N`` and ``-w D`` ping exits 0 only if N replies came back within D s.
    """
    argv = traffic.ping_argv(netns, address, count, interval, deadline)
    return run(*argv, check=False, timeout=deadline + 10)


@contextlib.contextmanager
def background(cmd: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A bounded helper process (ping, ip monitor) killed by PID on exit, whatever happens."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        if "monitor" in cmd:
            time.sleep(0.3)  # let it subscribe before anything happens
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)


def can_ping(netns: str, address: str) -> bool:
    return ping(netns, address, count=1, deadline=2).returncode == 0


@dataclasses.dataclass
class Vm:
    """A "VM": namespace + port, and the host it lives on."""

    name: str
    netns: str
    host: Host
    port_id: str
    mac: str
    ip: str
    network_id: str

    @property
    def address(self) -> str:
        return self.ip.split("/")[0]

    @property
    def tap(self) -> str:
        return "tap" + self.port_id[:11]


@dataclasses.dataclass
class Host:
    """A simulated host namespace and (maybe) its agent process."""

    name: str
    netns: str
    tunnel_ip: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    #: run the agent in the machine's mount namespace (with a private sysfs) instead of
    #: ``ip netns exec``'s own: namespaces it creates (routers) are then visible to every
    #: process, as on a real host (testing.md, "Simulated hosts that create namespaces")
    host_mounts: bool = False
    #: run the agent as this user with only its capabilities (None: as root)
    user: str | None = None
    #: L2 driver of the agent and more configuration (e.g. an ``[ovs]`` section)
    l2_driver: str = "linuxbridge"
    extra_config: str = ""

    @property
    def config_file(self) -> Path:
        return self.workdir / f"{self.name}.conf"

    @property
    def log_file(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def state_path(self) -> Path:
        return self.workdir / f"state-{self.name}"

    def write_config(self, state_file: Path, extra: str = "") -> None:
        self.state_path.mkdir(mode=0o700, exist_ok=True)
        if self.user is not None:
            os.chown(self.state_path, *agent_ids(self.user))
        self.config_file.write_text(
            "[DEFAULT]\n"
            f"host = {self.name}\n"
            f"state_path = {self.state_path}\n"
            "debug = true\n"
            f"log_file = {self.log_file}\n"
            "[agent]\n"
            "source = file\n"
            f"l2_driver = {self.l2_driver}\n"
            "[file_source]\n"
            f"path = {state_file}\n"
            "[linuxbridge]\n"
            f"local_ip = {self.tunnel_ip}\n" + self.extra_config + extra
        )

    def start_agent(self) -> None:
        assert self.process is None or self.process.poll() is not None
        out = (self.workdir / f"{self.name}.stdout").open("ab")
        # `ip netns exec`, nsenter, unshare, sh and setpriv all exec the next program: the
        # PID is the agent's own.
        agent = [str(BIN / "netagent-agent"), "--config-file", str(self.config_file)]
        env = None
        if self.user is not None:
            agent = unprivileged(self.user, agent)
            # the legacy tools' lock, /run/xtables.lock, is root's 0600 file here; a host
            # would make it group-writable for the agent's group (doc/install.md)
            env = {**os.environ, "XTABLES_LOCKFILE": str(self.state_path / "xtables.lock")}
        prefix = self.command_prefix()
        self.process = subprocess.Popen(
            [*prefix, *agent],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def command_prefix(self) -> list[str]:
        """How a process of this host is started (see :attr:`host_mounts`)."""
        if not self.host_mounts:
            return ["ip", "netns", "exec", self.netns]
        return [
            "nsenter",
            f"--net=/run/netns/{self.netns}",
            "unshare",
            "--mount",
            "--propagation",
            "unchanged",
            "sh",
            "-c",
            'mount --make-rslave /sys && mount -t sysfs sysfs /sys && exec "$@"',
            "agent",
        ]

    def stop_agent(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10) -> None:
        """Signal the agent this fabric started, by PID, and reap it."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def agent_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self) -> subprocess.CompletedProcess[str]:
        """``netagent-status --check`` for this host's agent (exit 0 = converged)."""
        return run(
            str(BIN / "netagent-status"),
            "--state-path",
            str(self.state_path),
            "--check",
            check=False,
        )

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.log_file, self.workdir / f"{self.name}.stdout"):
            if path.exists():
                text += (
                    f"--- {path.name}\n"
                    + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                    + "\n"
                )
        return text


class Fabric:
    """Underlay + hosts + VMs + the shared state file, all removed by :meth:`close`."""

    def __init__(self, workdir: Path, agent_user: str | None = None) -> None:
        self.workdir = workdir
        #: agents run as this user with only :data:`AGENT_CAPS` (None: as root)
        self.agent_user = agent_user
        # the creating PID lets a later run tell a crashed run's leftovers from the
        # namespaces of a run going on in parallel (see leftover_namespaces)
        self.tag = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.state_file = workdir / "state.yaml"
        self.namespaces: list[str] = []
        self.hosts: dict[str, Host] = {}
        self.vms: dict[str, Vm] = {}
        self.networks: dict[str, dict[str, Any]] = {}
        self.ports: dict[str, dict[str, Any]] = {}
        self.underlay = ""

    def start(self) -> None:
        """Create the underlay namespace and its bridge (call inside try/finally close)."""
        self.underlay = self._netns("ul")
        ip(self.underlay, "link", "add", UNDERLAY_BRIDGE, "type", "bridge")
        ip(self.underlay, "link", "set", UNDERLAY_BRIDGE, "up")

    def _netns(self, role: str) -> str:
        name = f"{NETNS_PREFIX}{self.tag}-{role}"
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        ip(name, "link", "set", "lo", "up")
        return name

    # -- topology ---------------------------------------------------------------------

    def add_underlay_node(self, role: str, address: str) -> str:
        """A namespace whose ``eth-ul`` (with ``address``) is a port of the underlay
        bridge; its name."""
        netns = self._netns(role)
        uplink = f"ul-{role}"[:15]
        ip(
            netns,
            "link",
            "add",
            "eth-ul",
            "type",
            "veth",
            "peer",
            "name",
            uplink,
            "netns",
            self.underlay,
        )
        ip(self.underlay, "link", "set", uplink, "master", UNDERLAY_BRIDGE, "up")
        ip(netns, "addr", "add", f"{address}/{UNDERLAY_PREFIX}", "dev", "eth-ul")
        ip(netns, "link", "set", "eth-ul", "up")
        return netns

    def add_host(self, name: str, tunnel_ip: str) -> Host:
        netns = self.add_underlay_node(name, tunnel_ip)
        host = Host(name, netns, tunnel_ip, self.workdir, user=self.agent_user)
        self.hosts[name] = host
        return host

    def add_network(self, vni: int, mtu: int = 1450, name: str = "") -> str:
        network_id = str(uuid.uuid4())
        self.networks[network_id] = {
            "id": network_id,
            "name": name or f"net-{vni}",
            "provider:network_type": "vxlan",
            "provider:segmentation_id": vni,
            "mtu": mtu,
        }
        return network_id

    def add_vm(
        self,
        name: str,
        host: Host,
        network_id: str,
        ip_cidr: str,
        *,
        in_state: bool = True,
        admin_state_up: bool = True,
    ) -> Vm:
        port_id = str(uuid.uuid4())
        mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in os.urandom(3))
        netns = f"{NETNS_PREFIX}{self.tag}-{name}"
        self.namespaces.append(netns)
        vmctl.create_vm(
            vm_ns=netns,
            port_id=port_id,
            mac=mac,
            ips=[ip_cidr],
            host_ns=host.netns,
            mtu=self.networks[network_id]["mtu"],
        )
        vm = Vm(name, netns, host, port_id, mac, ip_cidr, network_id)
        self.vms[name] = vm
        if in_state:
            self.add_port(vm, admin_state_up=admin_state_up)
        return vm

    def add_port(self, vm: Vm, admin_state_up: bool = True) -> None:
        self.ports[vm.port_id] = {
            "id": vm.port_id,
            "network_id": vm.network_id,
            "mac_address": vm.mac,
            "fixed_ips": [{"subnet_id": self._subnet_id(vm.network_id), "ip_address": vm.address}],
            "binding:host_id": vm.host.name,
            "device_owner": "compute:nova",
            "admin_state_up": admin_state_up,
        }

    def remove_port(self, vm: Vm) -> None:
        self.ports.pop(vm.port_id, None)

    def _subnet_id(self, network_id: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, network_id))

    # -- desired state ----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The standalone state document (Neutron API shapes)."""
        return {
            "agents": [
                {
                    "host": h.name,
                    "agent_type": "Netagent agent",
                    "configurations": {"tunneling_ip": h.tunnel_ip},
                }
                for h in self.hosts.values()
            ],
            "networks": list(self.networks.values()),
            "subnets": [
                {
                    "id": self._subnet_id(n),
                    "network_id": n,
                    "cidr": "192.0.2.0/24",
                    "ip_version": 4,
                    "gateway_ip": None,
                    "enable_dhcp": False,
                }
                for n in self.networks
            ],
            "ports": list(self.ports.values()),
        }

    def write_state(self) -> None:
        """Replace the state file atomically (JSON is valid YAML)."""
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state(), indent=1))
        tmp.rename(self.state_file)

    def start_agents(self) -> None:
        self.write_state()
        for host in self.hosts.values():
            host.write_config(self.state_file)
            host.start_agent()

    # -- checks -----------------------------------------------------------------------

    def wired(self, vm: Vm) -> bool:
        """The VM's tap is in its network's bridge and up, and the bridge is up."""
        devs = links(vm.host.netns)
        bridge = "brq" + vm.network_id[:11]
        tap = devs.get(vm.tap, {})
        return (
            tap.get("master") == bridge
            and "UP" in tap.get("flags", [])
            and "UP" in devs.get(bridge, {}).get("flags", [])
        )

    def wait_wired(self, *vms: Vm, timeout: float = 30.0) -> None:
        for vm in vms:
            wait_for(
                f"{vm.name} wired on {vm.host.name}", lambda vm=vm: self.wired(vm), timeout=timeout
            )

    def wait_ping(self, src: Vm, dst: Vm, timeout: float = 20.0) -> None:
        wait_for(
            f"{src.name} -> {dst.name} ping",
            lambda: can_ping(src.netns, dst.address),
            timeout=timeout,
            interval=0.1,
        )

    def ifindexes(self, host: Host, prefixes: tuple[str, ...] = ("brq", "nvx-")) -> dict[str, int]:
        return {n: d["ifindex"] for n, d in links(host.netns).items() if n.startswith(prefixes)}

    def diagnostics(self) -> str:
        return "".join(h.log_tail() for h in self.hosts.values())

    # -- teardown ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop agents (by PID) and delete every namespace created, ignoring errors."""
        for host in self.hosts.values():
            with contextlib.suppress(Exception):
                host.stop_agent(signal.SIGTERM, timeout=5)
        for name in reversed(self.namespaces):
            run("ip", "netns", "delete", name, check=False)


#: Namespaces named before names carried a PID count as leftovers after this long.
UNTAGGED_LEFTOVER_AGE = 1800.0


def leftover_namespaces() -> Iterator[str]:
    """Namespaces of an earlier, crashed fullstack run.

    Names are ``nafs-<pid>-<hex>-<role>``: only those whose creating process is gone are
    leftovers, so that a fullstack run never deletes the namespaces of another run going
    on at the same time (that pulled the taps from under a running test here).
    """
    with contextlib.suppress(FileNotFoundError):
        for name in sorted(os.listdir("/run/netns")):
            if not name.startswith(NETNS_PREFIX):
                continue
            owner = name[len(NETNS_PREFIX) :].split("-", 1)[0]
            if owner.isdigit():
                if not _pid_alive(int(owner)):
                    yield name
                continue
            with contextlib.suppress(OSError):
                age = time.time() - os.stat(f"/run/netns/{name}").st_mtime
                if age > UNTAGGED_LEFTOVER_AGE:
                    yield name


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

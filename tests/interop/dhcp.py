"""The stock neutron-dhcp-agent on a simulated host, and what a guest needs to use it.

:class:`DhcpAgent` runs ``neutron-dhcp-agent`` from the interop venv with ``interface_driver
= netagent``, next to the host's netagent. It creates ``qdhcp-`` namespaces, so it runs as a
real host would run it (testing.md, "Simulated hosts that create namespaces"): in the host's
network namespace, the machine's mount namespace, and a private sysfs. No ``sudo`` here:
``root_helper`` is empty (the test runs as root) and each privsep context starts
``privsep-helper`` from the venv. dnsmasq and haproxy (the metadata proxy) are started by
the agent; they daemonise into sessions of their own, so :meth:`DhcpAgent.stop` stops every
process whose network namespace is the host's or one of the agent's ``qdhcp-`` namespaces
(all started by this test), then deletes those namespaces.

:class:`MetadataStub` stands in for the metadata agent: an HTTP server on the unix socket
the proxy forwards to, answering with the network id the proxy added.

:func:`dhclient` runs ISC dhclient in a VM namespace with a script of ours, which
configures the VM's interface from the lease and records it, and never writes the
machine's /etc/resolv.conf (Debian's dhclient-script would).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shutil
import signal
import socketserver
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tests.fullstack import harness
from tests.interop import neutron_server
from tests.interop.api import NeutronApi

#: Privsep contexts of neutron 29 (neutron/privileged/__init__.py) and netagent's
#: interface driver: each needs its own helper command without sudo.
PRIVSEP_SECTIONS = (
    "netagent_privsep",
    "privsep",
    "privsep_dhcp_release",
    "privsep_ovs_vsctl",
    "privsep_namespace",
    "privsep_conntrack",
    "privsep_link",
)
#: Prefix of a DHCP agent's directory (config, state, log) under the temporary directory:
#: every process the agent starts names it in its command line (leftover detection).
WORKDIR_PREFIX = "netagent-dhcp-"
#: Seconds of a DHCP lease (Neutron's dhcp_lease_duration); short so renewals happen.
LEASE_SECONDS = 120

_LEASE_SCRIPT = """#!/usr/bin/python3
# dhclient-script stand-in: apply the lease to the interface and record it (JSON lines).
import ipaddress, json, os, subprocess
env = dict(os.environ)
dev = env["interface"]
lease = {{k: v for k, v in env.items() if k.startswith(("new_", "old_", "reason"))}}
with open({record!r}, "a") as out:
    out.write(json.dumps(lease) + "\\n")
if env["reason"] in ("BOUND", "RENEW", "REBIND", "REBOOT"):
    def ip(*args):
        subprocess.run(["ip", *args], check=False)
    net = ipaddress.ip_network(env["new_ip_address"] + "/" + env["new_subnet_mask"], strict=False)
    if "new_interface_mtu" in env:
        ip("link", "set", dev, "mtu", env["new_interface_mtu"])
    ip("addr", "replace", env["new_ip_address"] + "/" + str(net.prefixlen), "dev", dev)
    routes = [int(x) for x in env.get("new_rfc3442_classless_static_routes", "").split()]
    while routes:
        width = routes[0]
        octets = (width + 7) // 8
        dest = routes[1 : 1 + octets] + [0] * (4 - octets)
        gateway = routes[1 + octets : 5 + octets]
        routes = routes[5 + octets :]
        prefix = ".".join(map(str, dest)) + "/" + str(width)
        via = ".".join(map(str, gateway))
        if via == "0.0.0.0":
            ip("route", "replace", prefix, "dev", dev)
        else:
            ip("route", "replace", prefix, "via", via, "dev", dev)
    if "new_rfc3442_classless_static_routes" not in env and "new_routers" in env:
        ip("route", "replace", "default", "via", env["new_routers"].split()[0], "dev", dev)
"""

_LEASE_SCRIPT6 = """#!/usr/bin/python3
# dhclient -6 script stand-in: apply the IA_NA address and record the lease (JSON lines).
import json, os, subprocess
env = dict(os.environ)
lease = {{k: v for k, v in env.items() if k.startswith(("new_", "old_", "reason"))}}
with open({record!r}, "a") as out:
    out.write(json.dumps(lease) + "\\n")
if env["reason"] in ("BOUND6", "RENEW6", "REBIND6", "REBOOT6") and "new_ip6_address" in env:
    address = env["new_ip6_address"] + "/" + env.get("new_ip6_prefixlen", "128")
    subprocess.run(["ip", "-6", "addr", "replace", address, "dev", env["interface"]], check=False)
"""

_DHCLIENT_CONF = """option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, routers, interface-mtu,
        rfc3442-classless-static-routes, domain-name-servers;
"""


def _netns_inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def pids_in_namespaces(names: list[str]) -> list[int]:
    """PIDs of processes whose network namespace is one of ``names`` (under /run/netns)."""
    wanted = {i for i in (_netns_inode(f"/run/netns/{n}") for n in names) if i is not None}
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _netns_inode(f"/proc/{entry}/ns/net") in wanted:
            found.append(int(entry))
    return found


class DhcpAgent:
    """neutron-dhcp-agent for ``host`` (which must run netagent under the same host name)."""

    def __init__(
        self,
        server: neutron_server.NeutronServer,
        host: harness.Host,
        extra_config: str = "",
        isolated_metadata: bool = True,
    ) -> None:
        """:param extra_config: appended to dhcp_agent.ini (e.g. a ``[netagent]`` section).
        :param isolated_metadata: ``enable_isolated_metadata`` (a haproxy per network)."""
        self.server = server
        self.host = host
        self.extra_config = extra_config
        self.isolated_metadata = isolated_metadata
        # dnsmasq drops to user nobody and reads its files under state_path: not below
        # pytest's 0700 temporary directories
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{host.name}-"))
        self.workdir.chmod(0o755)
        self.config = self.workdir / "dhcp_agent.ini"
        self.log = self.workdir / "dhcp-agent.log"
        self.metadata_socket = self.workdir / "metadata_proxy"
        self.process: subprocess.Popen[bytes] | None = None
        self.network_ids: set[str] = set()

    def _bin(self, name: str) -> str:
        assert self.server.venv is not None
        return str(self.server.venv / "bin" / name)

    def write_config(self) -> None:
        helper = f"{self._bin('privsep-helper')} --config-file {self.config}"
        privsep = "".join(f"[{s}]\nhelper_command = {helper}\n" for s in PRIVSEP_SECTIONS)
        state = self.workdir / "state"
        (state / "lock").mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "[DEFAULT]\n"
            f"host = {self.host.name}\n"
            f"transport_url = {self.server.transport_url}\n"
            f"state_path = {state}\n"
            "debug = true\n"
            f"log_file = {self.log}\n"
            "interface_driver = netagent\n"
            f"enable_isolated_metadata = {str(self.isolated_metadata).lower()}\n"
            f"metadata_proxy_socket = {self.metadata_socket}\n"
            f"dhcp_lease_duration = {LEASE_SECONDS}\n"
            "resync_interval = 2\n"
            "rpc_response_timeout = 20\n"
            "[agent]\n"
            "root_helper =\n"
            f"report_interval = {neutron_server.AGENT_REPORT_INTERVAL}\n"
            f"[oslo_concurrency]\nlock_path = {state / 'lock'}\n" + privsep + self.extra_config
        )

    def start(self) -> None:
        """Start the agent in the host's netns, the machine's mount ns, a private sysfs."""
        self.write_config()
        out = (self.workdir / "dhcp-agent.stdout").open("ab")
        script = 'mount --make-rslave /sys && mount -t sysfs sysfs /sys && exec "$@"'
        self.process = subprocess.Popen(
            [
                *("nsenter", f"--net=/run/netns/{self.host.netns}"),
                *("unshare", "--mount", "--propagation", "unchanged"),
                *("sh", "-c", script, "dhcp-agent"),
                *(self._bin("neutron-dhcp-agent"), "--config-file", str(self.config)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()

    def namespaces(self) -> list[str]:
        """The ``qdhcp-`` namespaces of the networks this test told us about and of those
        the agent's log names (networks it served that the test did not make itself)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        logged = set(_QDHCP.findall(text))
        return [f"qdhcp-{n}" for n in sorted(self.network_ids | logged)]

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop the agent, then every process left in the host's and its namespaces."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)

    def close(self) -> None:
        """Stop everything started here and delete the ``qdhcp-`` namespaces."""
        self.stop()
        # dnsmasq, haproxy and privsep daemons left their process group
        namespaces = self.namespaces()
        strays = set(pids_in_namespaces(namespaces))
        if self.process is not None:
            strays |= {
                p
                for p in pids_in_namespaces([self.host.netns])
                if _cmdline_has(p, (str(self.workdir),))
            }
        for pid in strays:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for name in namespaces:
            harness.run("ip", "netns", "delete", name, check=False)

    def remove_files(self) -> None:
        """Delete the agent's directory (config, state, log)."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return "--- dhcp-agent.log: (none)\n"
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return "--- dhcp-agent.log\n" + "\n".join(text) + "\n"

    def errors(self) -> list[str]:
        if not self.log.exists():
            return []
        return [
            line
            for line in self.log.read_text(errors="replace").splitlines()
            if " ERROR " in line or line.startswith("Traceback")
        ]


@contextlib.contextmanager
def running_agent(
    server: neutron_server.NeutronServer,
    api: NeutronApi,
    host: harness.Host,
    netagent_hosts: Iterable[str],
    extra_config: str = "",
    timeout: float = 60.0,
) -> Iterator[DhcpAgent]:
    """A started DHCP agent on ``host`` with its metadata stub, once the API lists it and
    the netagent agents of ``netagent_hosts`` alive. On exit it is stopped and its agent
    row deleted: the server is shared by the session, and a DHCP agent row left behind
    makes later modules (tempest's test_port_shut_down) wait for DHCP ports nobody will
    create. Its files are kept with ``NETAGENT_INTEROP_KEEP``."""

    def alive(name: str, agent_type: str) -> bool:
        return any(a["alive"] for a in api.agents(host=name, agent_type=agent_type))

    agent = DhcpAgent(server, host, extra_config=extra_config)
    stub = MetadataStub(agent.metadata_socket).start()
    try:
        agent.start()
        neutron_server.wait_until(
            "DHCP agent alive", lambda: alive(host.name, "DHCP agent"), timeout, 0.5
        )
        for name in netagent_hosts:
            neutron_server.wait_until(
                f"netagent on {name} alive",
                lambda name=name: alive(name, "Netagent agent"),
                timeout,
                0.5,
            )
        yield agent
    finally:
        print(agent.log_tail())
        agent.close()
        stub.stop()
        for row in api.agents(host=host.name, agent_type="DHCP agent"):
            api.delete(f"/v2.0/agents/{row['id']}")
        if not os.environ.get("NETAGENT_INTEROP_KEEP"):
            agent.remove_files()


_QDHCP = re.compile(r"qdhcp-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _cmdline_has(pid: int, needles: tuple[str, ...]) -> bool:
    cmdline = _cmdline(pid)
    return any(n in cmdline for n in needles)


def _workdir_re() -> re.Pattern[str]:
    base = re.escape(os.path.join(tempfile.gettempdir(), WORKDIR_PREFIX))
    return re.compile(rf"({base}[A-Za-z0-9_.-]+)")


def remove_leftovers() -> list[str]:
    """Remove what DHCP agents of crashed test runs left: the processes they started
    (dnsmasq, haproxy, privsep daemons: they name the agent's directory in their command
    line), their ``qdhcp-`` namespaces, their directories, and guests' dhclients whose VM
    namespace is gone.

    An agent's directory is a leftover when no ``neutron-dhcp-agent`` process names it.
    A ``qdhcp-`` namespace goes when every process in it is a leftover's, or when it is
    empty and no test DHCP agent is alive at all (an empty namespace cannot be told
    apart otherwise; interop runs do not overlap: tests/interop/venv.py ``in_use``).

    :returns: what was removed, one line each.
    """
    pattern = _workdir_re()
    by_dir: dict[str, list[int]] = {}
    live: set[str] = set()
    guests: list[int] = []
    namespaces = set(_list_netns())
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        cmdline = _cmdline(int(entry))
        guest = _GUEST_CLIENT_RE.search(cmdline)
        if guest is not None and guest.group(1) not in namespaces:
            guests.append(int(entry))  # a dhclient whose VM namespace was deleted
            continue
        match = pattern.search(cmdline)
        if match is None:
            continue
        by_dir.setdefault(match.group(1), []).append(int(entry))
        if "neutron-dhcp-agent" in cmdline:
            live.add(match.group(1))
    removed = []
    stray = {pid for d, pids in by_dir.items() if d not in live for pid in pids}
    doomed = []
    for name in sorted(n for n in _list_netns() if n.startswith("qdhcp-")):
        inside = set(pids_in_namespaces([name]))
        if (inside and inside <= stray) or (not inside and not live):
            doomed.append(name)
    for pid in sorted(stray | set(guests)):
        what = f"process {pid} ({_cmdline(pid)[:100]})"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            removed.append(what)
    for name in doomed:
        harness.run("ip", "netns", "delete", name, check=False)
        removed.append(f"namespace {name}")
    for path in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        if str(path) not in live:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(f"directory {path}")
    return removed


#: The directory of a guest's dhclient (:class:`Dhclient`) names its VM namespace.
_GUEST_CLIENT_RE = re.compile(r"/dhclient6?-(naio-[A-Za-z0-9_.-]+)/")


def _list_netns() -> list[str]:
    try:
        return os.listdir("/run/netns")
    except FileNotFoundError:
        return []


class _MetadataHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(
            {
                "path": self.path,
                "network_id": self.headers.get("X-Neutron-Network-ID"),
                "forwarded_for": self.headers.get("X-Forwarded-For"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:  # a unix socket peer has no (host, port)
        return "metadata-proxy"


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class MetadataStub:
    """The metadata agent's end of ``metadata_proxy_socket``: echoes what the proxy sent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.server: _UnixHTTPServer | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> MetadataStub:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.server = _UnixHTTPServer(str(self.path), _MetadataHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class Dhclient:
    """ISC dhclient for one VM namespace; leases recorded as JSON lines.

    :param family: 4 (DHCP) or 6 (DHCPv6, stateful: an IA_NA address; ``reason``
        ``BOUND6``, ``new_ip6_address``).
    """

    def __init__(
        self, vm_ns: str, workdir: Path, interface: str = "eth0", family: int = 4
    ) -> None:
        self.vm_ns = vm_ns
        self.interface = interface
        self.family = family
        self.dir = workdir / (f"dhclient-{vm_ns}" if family == 4 else f"dhclient6-{vm_ns}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record = self.dir / "leases.jsonl"
        self.script = self.dir / "script"
        script = _LEASE_SCRIPT if family == 4 else _LEASE_SCRIPT6
        self.script.write_text(script.format(record=str(self.record)))
        self.script.chmod(0o755)
        self.conf = self.dir / "dhclient.conf"
        self.conf.write_text(_DHCLIENT_CONF if family == 4 else "")
        self.process: subprocess.Popen[bytes] | None = None

    def _cmd(self, *extra: str) -> list[str]:
        return [
            *("ip", "netns", "exec", self.vm_ns, "dhclient", f"-{self.family}", "-v"),
            *("-cf", str(self.conf), "-sf", str(self.script)),
            *("-lf", str(self.dir / "dhclient.leases"), "-pf", str(self.dir / "dhclient.pid")),
            *extra,
            self.interface,
        ]

    def once(self, timeout: float = 60) -> int:
        """``dhclient -1``: get a lease (or fail and exit 2); once bound it goes on renewing
        in the background (a second call replaces the running one and asks for the lease
        again: INIT-REBOOT, reason ``REBOOT``). Output in ``dhclient.out``."""
        with (self.dir / "dhclient.out").open("ab") as out:
            # the daemon keeps the output file, never a pipe this process would wait on
            return subprocess.run(
                self._cmd("-1"), stdout=out, stderr=subprocess.STDOUT, timeout=timeout
            ).returncode

    def leases(self) -> list[dict[str, str]]:
        """Every script call so far, oldest first."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def stop(self) -> None:
        """Stop the running client without releasing its lease (``dhclient -x``)."""
        subprocess.run(self._cmd("-x"), capture_output=True, timeout=30, check=False)


def http_get(vm_ns: str, url: str, timeout: float = 5) -> tuple[int, str]:
    """GET ``url`` from inside ``vm_ns``: (status, body); (0, error) when nothing answers."""
    code = (
        "import sys, urllib.request\n"
        "try:\n"
        f"    r = urllib.request.urlopen({url!r}, timeout={timeout})\n"
        "    print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
        "except Exception as e:\n"
        "    print(0); print(repr(e))\n"
    )
    proc = subprocess.run(
        ["ip", "netns", "exec", vm_ns, "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout + 10,
    )
    status, _, body = proc.stdout.partition("\n")
    return int(status or 0), body.strip() or proc.stderr.strip()

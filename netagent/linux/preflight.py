"""Read-only probes of the kernel features and tools netagent's drivers need.

Each returns a short description of what it found or raises :class:`PreflightError` with
what to do; nothing on the host is changed (``modprobe --dry-run`` only resolves).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess

from netagent.common.exceptions import PreflightError
from netagent.linux.iptables import backend as iptables_backend
from netagent.privileged import ctnetlink, ipset, routes
from netagent.privileged.errors import KernelError

_SYS_MODULE = "/sys/module"
_PROC_SYS = "/proc/sys"


def module(name: str) -> str:
    """``name`` is loaded (or built in); the kernel exposes /sys/module/<name> then."""
    if os.path.isdir(os.path.join(_SYS_MODULE, name)):
        return "loaded"
    modprobe = shutil.which("modprobe") or "/sbin/modprobe"
    try:
        probe = subprocess.run(
            [modprobe, "--dry-run", "--quiet", name],
            check=False,
            capture_output=True,
            timeout=10,
        )
    except OSError:
        probe = None
    if probe is not None and probe.returncode == 0:
        return "not loaded, available (loaded on first use)"
    raise PreflightError(f"kernel module {name} is neither loaded nor available")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PreflightError(f"{name} is not installed (not on PATH)")
    return path


def check_namespaces() -> str:
    if not os.path.exists("/proc/self/ns/net"):
        raise PreflightError("the kernel has no network namespaces (/proc/self/ns/net)")
    return "supported"


def check_bridge() -> str:
    return "bridge " + module("bridge")


def check_vxlan() -> str:
    return "vxlan " + module("vxlan")


def check_br_netfilter() -> str:
    """Loaded, and its per-namespace sysctls are there (the driver sets them to 1)."""
    values = []
    for key in ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables"):
        path = os.path.join(_PROC_SYS, "net", "bridge", key)
        try:
            with open(path) as f:
                values.append(f"{key}={f.read().strip()}")
        except FileNotFoundError:
            raise PreflightError(
                "br_netfilter is not loaded (modprobe br_netfilter; the systemd unit does it)"
            ) from None
    return "loaded, " + ", ".join(values) + " (set to 1 by the firewall driver)"


def check_iptables(configured: str, state_path: str | None = None) -> str:
    how = "configured"
    backend = configured
    if configured == "auto":
        for family in ("iptables", "ip6tables"):
            tool(f"{family}-nft-save")
        choice = iptables_backend.choose(
            iptables_backend.gather(None, iptables_backend.read_record(state_path))
        )
        backend, how = choice.backend, f"auto: {choice.reason}"
    for family in ("iptables", "ip6tables"):
        for part in ("restore", "save"):
            tool(f"{family}-{backend}-{part}")
    return f"backend {backend} ({how}), iptables-{backend}-restore/-save for IPv4 and IPv6"


def check_ebtables() -> str:
    return tool("ebtables-restore") + ", " + tool("ebtables-save")


def check_ipset() -> str:
    tool("ipset")
    try:
        names = ipset.list_names(None)
    except ipset.IpsetError as exc:
        raise PreflightError(f"ipset cannot talk to the kernel: {exc}") from None
    return f"kernel answers ({len(names)} sets)"


def check_conntrack() -> str:
    try:
        with ctnetlink.CtnetlinkSocket(None) as sock:
            count = sock.count()
    except (OSError, KernelError) as exc:
        raise PreflightError(
            f"ctnetlink does not answer ({os.strerror(exc.errno or errno.EIO)}); "
            "needs nf_conntrack_netlink and CAP_NET_ADMIN"
        ) from None
    return f"ctnetlink answers ({count} entries)"


def check_policy_routing() -> str:
    try:
        rules = routes.list_rules(None, 4)
    except (OSError, KernelError) as exc:
        raise PreflightError(f"no policy routing: {exc}") from None
    return f"{len(rules)} IPv4 rules"

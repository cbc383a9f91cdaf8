#!/usr/bin/env python3
"""Hypervisor stand-in: create or delete a "VM" the way Nova/libvirt would leave it.

A VM is a network namespace holding one end of a veth pair (``eth0``, with the port's MAC,
addresses, MTU and default route). The other end is the port's tap device, ``tap`` + the
first 11 characters of the port id, left in the host namespace (the root namespace when
``--host-ns`` is omitted) and brought up, exactly where the L2 agent expects to find it.
The tool never enslaves the tap anywhere: wiring it is the agent's job.

Examples::

    python tools/vmctl.py create --host-ns host-a --vm-ns vm1 \\
        --port-id 6f0c2a1e-... --mac fa:16:3e:00:00:01 --ip 192.0.2.10/24 --mtu 1450
    python tools/vmctl.py delete --host-ns host-a --vm-ns vm1 --port-id 6f0c2a1e-...

Only uses iproute2; run as root. Importable: :func:`create_vm` and :func:`delete_vm`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import subprocess
import sys
import uuid

TAP_PREFIX = "tap"
ID_CHARS = 11
VM_IFNAME = "eth0"
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def tap_name(port_id: str) -> str:
    """``tap`` + 11 chars of the port id (the name Nova gives the VM's NIC on the host)."""
    return TAP_PREFIX + str(uuid.UUID(port_id))[:ID_CHARS]


def _ip(netns: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip"] + (["-n", netns] if netns else []) + list(args)
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def _netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join("/run/netns", name))


def create_vm(
    *,
    vm_ns: str,
    port_id: str,
    mac: str,
    ips: list[str],
    host_ns: str | None = None,
    mtu: int | None = None,
    gateway: str | None = None,
    gateway6: str | None = None,
) -> str:
    """Create the VM namespace and its veth pair; returns the tap name.

    :raises ValueError: bad MAC, address or port id.
    :raises subprocess.CalledProcessError: an iproute2 command failed (partial state is
        removed first).
    """
    mac = mac.lower()
    if not _MAC_RE.match(mac):
        raise ValueError(f"bad MAC address {mac!r}")
    interfaces = [ipaddress.ip_interface(a) for a in ips]
    tap = tap_name(port_id)
    peer = "vm" + uuid.uuid4().hex[:10]  # temporary name of the VM end in the host ns
    if host_ns and not _netns_exists(host_ns):
        raise ValueError(f"host namespace {host_ns!r} does not exist")
    created_ns = False
    try:
        if not _netns_exists(vm_ns):
            subprocess.run(["ip", "netns", "add", vm_ns], check=True, capture_output=True)
            created_ns = True
        _ip(vm_ns, "link", "set", "lo", "up")
        _ip(host_ns, "link", "add", tap, "type", "veth", "peer", "name", peer)
        _ip(host_ns, "link", "set", peer, "netns", vm_ns)
        _ip(vm_ns, "link", "set", peer, "name", VM_IFNAME)
        _ip(vm_ns, "link", "set", VM_IFNAME, "address", mac)
        if mtu:
            _ip(host_ns, "link", "set", tap, "mtu", str(mtu))
            _ip(vm_ns, "link", "set", VM_IFNAME, "mtu", str(mtu))
        for iface in interfaces:
            extra = ["nodad"] if iface.version == 6 else []
            _ip(vm_ns, "addr", "add", str(iface), "dev", VM_IFNAME, *extra)
        _ip(vm_ns, "link", "set", VM_IFNAME, "up")
        # libvirt brings the tap up; whether it forwards is the agent's decision (it
        # sets the link down for ports with admin_state_up false).
        _ip(host_ns, "link", "set", tap, "up")
        if gateway:
            _ip(vm_ns, "route", "add", "default", "via", gateway)
        if gateway6:
            _ip(vm_ns, "-6", "route", "add", "default", "via", gateway6)
    except Exception:
        _ip(host_ns, "link", "del", tap, check=False)
        if created_ns:
            subprocess.run(["ip", "netns", "delete", vm_ns], check=False, capture_output=True)
        raise
    return tap


def delete_vm(*, vm_ns: str, port_id: str | None = None, host_ns: str | None = None) -> None:
    """Delete the VM namespace (which removes the veth pair) and any leftover tap."""
    if _netns_exists(vm_ns):
        subprocess.run(["ip", "netns", "delete", vm_ns], check=False, capture_output=True)
    if port_id:
        _ip(host_ns, "link", "del", tap_name(port_id), check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a VM namespace with a tap on the host")
    delete = sub.add_parser("delete", help="delete a VM namespace and its tap")
    for p in (create, delete):
        p.add_argument("--host-ns", help="namespace of the host (default: root namespace)")
        p.add_argument("--vm-ns", required=True, help="namespace name of the VM")
        p.add_argument("--port-id", required=create is p, help="port UUID (names the tap)")
    create.add_argument("--mac", required=True, help="the port's MAC address")
    create.add_argument("--ip", action="append", default=[], help="IPv4 address/prefix")
    create.add_argument("--ip6", action="append", default=[], help="IPv6 address/prefix")
    create.add_argument("--mtu", type=int, help="MTU of both veth ends (network MTU)")
    create.add_argument("--gateway", help="IPv4 default gateway")
    create.add_argument("--gateway6", help="IPv6 default gateway")
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            tap = create_vm(
                vm_ns=args.vm_ns,
                port_id=args.port_id,
                mac=args.mac,
                ips=args.ip + args.ip6,
                host_ns=args.host_ns,
                mtu=args.mtu,
                gateway=args.gateway,
                gateway6=args.gateway6,
            )
            print(tap)
        else:
            delete_vm(vm_ns=args.vm_ns, port_id=args.port_id, host_ns=args.host_ns)
    except (ValueError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        print(f"vmctl: {exc} {detail}".strip(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

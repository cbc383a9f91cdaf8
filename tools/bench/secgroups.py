"""Security-group benchmark: netagent's iptables firewall driver vs Neutron 29's
``IptablesFirewallDriver`` (ipset on), side by side, on identical work in fresh namespaces.

Workload per N (50, 200, 500): N local ports in one security group of 20 rules (one of
them a self-referencing remote-group rule), plus 10 ports of the group on other hosts.
Measured, each from the previous state: the first full apply; one rule added (every port
of the group re-filtered, as the agents do); one port removed; one member removed (a
remote port leaves the group: every port re-filtered, as the agents do). One JSON line per
N: both times, ratios (Neutron / netagent) and restore input sizes (characters).

Neutron runs in its own virtualenv (``--neutron-venv``; default: the interop tier's cached
venv, else /var/cache/netagent-bench/neutron-venv, created with ``pip install
neutron==29.0.0``) through this same file (``--neutron-child``), inside ``ip netns exec``
of its fresh namespace, with privsep in-process. netagent runs in this process against
its own fresh namespace. Root needed; only namespaces created here are touched and they
are deleted at the end. Addresses: 198.18.0.0/15 and fd00::/8.

Usage: sudo .venv/bin/python tools/bench/secgroups.py [--sizes 50,200,500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

SG = "5e0f0000-0000-4000-8000-000000000001"
NET = "9b8e0000-0000-4000-8000-000000000001"
REMOTE_MEMBERS = 10
INTEROP_VENV = "/var/cache/netagent-interop/venv-29.0.0"
OWN_VENV = "/var/cache/netagent-bench/neutron-venv"


def port_id(i: int) -> str:
    """Deterministic, spread like real UUIDs (tap names fall into all 16 buckets)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"netagent-bench-port-{i}"))


def ip4(i: int) -> str:
    return f"198.18.{i // 250}.{i % 250 + 1}"


def mac(i: int) -> str:
    return f"fa:16:3e:00:{i // 256:02x}:{i % 256:02x}"


def rules(extra: bool) -> list[dict[str, object]]:
    """20 rules (API-shaped) + optionally one more."""
    out: list[dict[str, object]] = [
        {"direction": "egress", "ethertype": "IPv4"},
        {"direction": "egress", "ethertype": "IPv6"},
        {"direction": "ingress", "ethertype": "IPv4", "remote_group_id": SG},
        {"direction": "ingress", "ethertype": "IPv4", "protocol": "icmp"},
        {"direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp"},
    ]
    for port in (22, 80, 443, 3306, 5432, 6379, 8000, 8080, 8443, 9090, 11211):
        out.append(
            {
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "tcp",
                "port_range_min": port,
                "port_range_max": port,
                "remote_ip_prefix": "198.18.0.0/15",
            }
        )
    out.append(
        {
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "udp",
            "port_range_min": 53,
            "port_range_max": 53,
        }
    )
    out.append(
        {
            "direction": "ingress",
            "ethertype": "IPv4",
            "protocol": "udp",
            "port_range_min": 5000,
            "port_range_max": 5100,
        }
    )
    out.append(
        {
            "direction": "ingress",
            "ethertype": "IPv6",
            "protocol": "tcp",
            "port_range_min": 22,
            "port_range_max": 22,
        }
    )
    out.append(
        {
            "direction": "egress",
            "ethertype": "IPv4",
            "protocol": "tcp",
            "port_range_min": 25,
            "port_range_max": 25,
            "remote_ip_prefix": "192.0.2.0/24",
        }
    )
    assert len(out) == 20
    if extra:
        out.append(
            {
                "direction": "ingress",
                "ethertype": "IPv4",
                "protocol": "tcp",
                "port_range_min": 9999,
                "port_range_max": 9999,
            }
        )
    return out


# -- Neutron side (runs in the Neutron venv, inside the namespace) -----------------------


def neutron_child(n: int) -> dict[str, object]:
    import eventlet  # noqa: PLC0415

    eventlet.monkey_patch()
    from neutron.agent.linux import iptables_firewall, iptables_manager  # noqa: PLC0415
    from neutron.conf.agent import common as agent_config  # noqa: PLC0415
    from neutron.conf.agent import securitygroups_rpc as sg_cfg  # noqa: PLC0415
    from neutron.privileged import default as priv_default  # noqa: PLC0415
    from oslo_config import cfg  # noqa: PLC0415

    priv_default.set_client_mode(False)
    agent_config.register_root_helper(cfg.CONF)
    sg_cfg.register_securitygroups_opts(cfg.CONF)
    cfg.CONF([], project="neutron")
    from oslo_concurrency import lockutils  # noqa: PLC0415

    lockutils.set_defaults(f"/tmp/netagent-bench-locks-{os.getpid()}")
    cfg.CONF.set_override("root_helper", "", "AGENT")
    cfg.CONF.set_override("enable_ipset", True, "SECURITYGROUP")
    sizes: list[int] = []
    real = iptables_manager.IptablesManager._do_run_restore

    def counting(self, args, commands, lock=False):  # type: ignore[no-untyped-def]
        sizes.append(len("\n".join(commands)))
        return real(self, args, commands, lock)

    iptables_manager.IptablesManager._do_run_restore = counting

    def api_rule(r: dict[str, object]) -> dict[str, object]:
        out = dict(r)
        out["security_group_id"] = SG
        prefix = out.pop("remote_ip_prefix", None)
        if prefix:
            out["source_ip_prefix" if r["direction"] == "ingress" else "dest_ip_prefix"] = prefix
        return out

    def port(i: int) -> dict[str, object]:
        return {
            "device": "tap" + port_id(i)[:11],
            "id": port_id(i),
            "network_id": NET,
            "mac_address": mac(i),
            "fixed_ips": [ip4(i)],
            "security_groups": [SG],
            "security_group_source_groups": [SG],
            "security_group_rules": [],
            "allowed_address_pairs": [],
            "port_security_enabled": True,
            "device_owner": "compute:nova",
        }

    def members(count: int) -> dict[str, list[list[object]]]:
        return {"IPv4": [[ip4(i), None] for i in range(count)]}

    drv = iptables_firewall.IptablesFirewallDriver()
    ports = [port(i) for i in range(n)]
    result: dict[str, object] = {}

    def timed(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        del sizes[:]
        start = time.perf_counter()
        fn()
        result[name] = time.perf_counter() - start
        result[name + "_restore_chars"] = sum(sizes)

    def full() -> None:
        drv.update_security_group_rules(SG, [api_rule(r) for r in rules(False)])
        drv.update_security_group_members(SG, members(n + REMOTE_MEMBERS))
        with drv.defer_apply():
            for p in ports:
                drv.prepare_port_filter(p)

    def rule_added() -> None:
        drv.update_security_group_rules(SG, [api_rule(r) for r in rules(True)])
        with drv.defer_apply():
            for p in ports:
                drv.update_port_filter(p)

    def port_removed() -> None:
        with drv.defer_apply():
            drv.remove_port_filter(ports[-1])

    def member_removed() -> None:
        drv.update_security_group_members(SG, members(n + REMOTE_MEMBERS - 1))
        with drv.defer_apply():
            for p in ports[:-1]:
                drv.update_port_filter(p)

    timed("full", full)
    timed("rule_added", rule_added)
    timed("port_removed", port_removed)
    timed("member_removed", member_removed)
    return result


# -- netagent side ------------------------------------------------------------------------


def netagent_run(n: int, ns: str, backend: str) -> dict[str, object]:
    import ipaddress  # noqa: PLC0415

    from oslo_config import cfg  # noqa: PLC0415

    from netagent.conf import iptables as iptables_conf  # noqa: PLC0415
    from netagent.drivers.base import PortPlan  # noqa: PLC0415
    from netagent.drivers.iptables_firewall import IptablesFirewallDriver  # noqa: PLC0415
    from netagent.model import (  # noqa: PLC0415
        DesiredState,
        FixedIP,
        Network,
        NetworkType,
        Port,
        SecurityGroup,
        SecurityGroupRule,
    )

    conf = cfg.ConfigOpts()
    iptables_conf.register_opts(conf)
    conf([], project="netagent")
    conf.set_override("backend", backend, "iptables")
    network = Network(NET, "n", NetworkType.FLAT, None, "physnet1")

    def group(extra: bool) -> SecurityGroup:
        parsed = tuple(SecurityGroupRule.from_api(dict(r), SG) for r in rules(extra))
        return SecurityGroup(SG, "sg", True, parsed)

    def port(i: int, host: str) -> Port:
        return Port(
            id=port_id(i),
            network_id=NET,
            mac_address=mac(i),
            fixed_ips=(FixedIP(None, ipaddress.ip_address(ip4(i))),),
            host=host,
            security_groups=(SG,),
        )

    local = [port(i, "here") for i in range(n)]
    remote = [port(i, "there") for i in range(n, n + REMOTE_MEMBERS)]

    def state(ports: list[Port], extra: bool) -> DesiredState:
        return DesiredState.build(networks=[network], ports=ports, security_groups=[group(extra)])

    drv = IptablesFirewallDriver(conf, netns=ns)
    drv.initialize()
    plans = [PortPlan(p, network) for p in local]
    result: dict[str, object] = {}

    def timed(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = fn()
        result[name] = time.perf_counter() - start
        assert not out.failed, out.failed
        result[name + "_restore_chars"] = sum(len(t) for t in drv.last_inputs)

    timed("full", lambda: drv.apply_ports(plans, state(local + remote, False)))
    timed("rule_added", lambda: drv.apply_ports(plans, state(local + remote, True)))
    timed("port_removed", lambda: drv.remove_ports([local[-1].id]))
    after = state(local[:-1] + remote[:-1], True)
    timed("member_removed", lambda: drv.apply_ports(plans[:-1], after))
    return result


def neutron_venv(explicit: str | None) -> str:
    for candidate in (explicit, INTEROP_VENV, OWN_VENV):
        if candidate and os.path.exists(os.path.join(candidate, "bin", "python")):
            check = subprocess.run(
                [
                    os.path.join(candidate, "bin", "python"),
                    "-c",
                    "import neutron.agent.linux.iptables_firewall",
                ],
                capture_output=True,
                check=False,
            )
            if check.returncode == 0:
                return candidate
    subprocess.run([sys.executable, "-m", "venv", OWN_VENV], check=True)
    subprocess.run([f"{OWN_VENV}/bin/pip", "install", "-q", "neutron==29.0.0"], check=True)
    return OWN_VENV


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,500")
    parser.add_argument("--backend", default="nft", choices=["nft", "legacy"])
    parser.add_argument("--neutron-venv")
    parser.add_argument("--neutron-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.neutron_child is not None:
        print(json.dumps(neutron_child(args.neutron_child)))
        return
    venv = neutron_venv(args.neutron_venv)
    alternative = "iptables-nft-restore" if args.backend == "nft" else "iptables-legacy-restore"
    for n in (int(x) for x in args.sizes.split(",")):
        names = [f"natest-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}" for _ in range(2)]
        try:
            for name in names:
                subprocess.run(["ip", "netns", "add", name], check=True)
            # Neutron runs "iptables-restore" (the host's alternative); make it match.
            env = dict(os.environ, PATH=f"{_shim_dir(alternative)}:{os.environ['PATH']}")
            child = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    names[0],
                    f"{venv}/bin/python",
                    __file__,
                    "--neutron-child",
                    str(n),
                ],
                capture_output=True,
                text=True,
                check=False,
                env=env,
                timeout=1800,
            )
            if child.returncode != 0:
                raise SystemExit(f"neutron side failed:\n{child.stderr[-3000:]}")
            neutron = json.loads(child.stdout.strip().splitlines()[-1])
            ours = netagent_run(n, names[1], args.backend)
            line: dict[str, object] = {"ports": n, "rules": 20, "backend": args.backend}
            for key in ("full", "rule_added", "port_removed", "member_removed"):
                line[f"{key}_neutron_s"] = round(float(neutron[key]), 4)
                line[f"{key}_netagent_s"] = round(float(ours[key]), 4)
                line[f"{key}_ratio"] = round(float(neutron[key]) / float(ours[key]), 1)
                line[f"{key}_restore_chars_neutron"] = neutron[f"{key}_restore_chars"]
                line[f"{key}_restore_chars_netagent"] = ours[f"{key}_restore_chars"]
            print(json.dumps(line), flush=True)
        finally:
            for name in names:
                subprocess.run(["ip", "netns", "delete", name], check=False)


def _shim_dir(restore: str) -> str:
    """A directory whose iptables-restore/ip6tables-restore are the chosen backend's."""
    path = f"/tmp/netagent-bench-shim-{os.getpid()}"
    os.makedirs(path, exist_ok=True)
    for family in ("", "6"):
        for tool in ("restore", "save"):
            target = f"/usr/sbin/ip{family}tables-{restore.split('-')[1]}-{tool}"
            link = os.path.join(path, f"ip{family}tables-{tool}")
            if not os.path.lexists(link):
                os.symlink(target, link)
    return path


if __name__ == "__main__":
    main()

"""OVS plugging benchmark: the openvswitch driver against one ovs-vsctl transaction and
Neutron 29's ovs_lib (one transaction per port), side by side in one run.

A private ovsdb-server + ovs-vswitchd (userspace datapath) runs in a namespace of its own
(``nabench-<pid>-<hex>``); br-int gets internal ports (not timed). "Plugging" a port is
what an agent does once os-vif has added it: give it its network's local VLAN tag and
``other_config:net_uuid``, and (driver only) admit it in br-int's table 0. Timed sides,
each from untagged ports, for each count of ``--ports``:

* ``driver``: the production path. The driver is initialized first (no VM port yet), then
  os-vif's step is played (``iface-id``/``attached-mac`` set on the ports, not timed) and
  the driver's Interface monitor reports every port, as it wakes the agent. Timed: the
  calls the agent's pass makes, in its order (``Reconciler._pass`` / ``Converger.run``):
  ``check_integrity``, ``begin_pass``, ``ensure_networks`` (the ports' networks, new),
  ``plug_ports``, ``end_pass``;
* ``vsctl``: one ``ovs-vsctl`` invocation setting tag and other_config of every port;
* ``ovs_lib``: Neutron 29's ``OVSBridge`` (from the interop tier's cached virtualenv,
  ``/var/cache/netagent-interop/venv-29.0.0``), one transaction per port; skipped when
  that virtualenv is absent.

Then ``restart``: a new driver (agent restart) with ``--restart-ports`` ports already
wired: initialize + one pass + sweep, with its OVSDB transactions and flow changes (goal:
0 and 0). One JSON line per figure, with the load average before the figure was measured.
Run as root from the repository: ``.venv/bin/python tools/bench/ovs.py``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# sys.path[0] is this file's directory: "import ovs" (python-ovs, under ovsdbapp) would
# import this script. The repository replaces it.
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from oslo_config import cfg

from netagent.agent import heap
from netagent.conf import ovs as ovs_conf
from netagent.drivers.base import NetworkPlan, PortPlan
from netagent.drivers.openvswitch import OpenvswitchDriver
from netagent.model.network import Network, NetworkType
from netagent.model.port import Port
from tests.common.ovs import PrivateOvs

NEUTRON_VENV = Path("/var/cache/netagent-interop/venv-29.0.0")
OVS_LIB = """
import json, sys, time
from oslo_config import cfg
from neutron.conf.agent import ovs_conf, ovsdb_api
ovs_conf.register_ovs_agent_opts(cfg.CONF)
ovsdb_api.register_ovsdb_api_opts(cfg.CONF)
cfg.CONF([], project="neutron")
cfg.CONF.set_override("ovsdb_connection", sys.argv[1], "OVS")
from neutron.agent.common import ovs_lib
br = ovs_lib.OVSBridge("br-int")
ports = json.load(sys.stdin)
start = time.monotonic()
for name, tag, net in ports:
    with br.ovsdb.transaction(check_error=True) as txn:
        txn.add(br.ovsdb.db_set("Port", name, ("other_config", {"net_uuid": net}), ("tag", tag)))
print(json.dumps({"seconds": time.monotonic() - start}))
"""


def sh(*cmd: str, stdin: str | None = None) -> str:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True).stdout


def make_ports(switch: PrivateOvs, networks: list[Network], count: int) -> list[PortPlan]:
    plans = []
    commands: list[list[str]] = []
    for i in range(count):
        net = networks[i % len(networks)]
        port = Port(
            id=str(uuid.uuid4()),
            network_id=net.id,
            mac_address=f"fa:16:3e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
            host="bench",
        )
        plans.append(PortPlan(port, net))
        name = port.device_name
        commands.append(
            [
                "--",
                "add-port",
                "br-int",
                name,
                "--",
                "set",
                "Interface",
                name,
                "type=internal",
                f"external_ids:iface-id={port.id}",
                f"external_ids:attached-mac={port.mac_address}",
            ]
        )
    for start in range(0, len(commands), 100):  # keep each command line reasonable
        switch.vsctl(*[arg for cmd in commands[start : start + 100] for arg in cmd])
    return plans


def reset(switch: PrivateOvs, plans: list[PortPlan]) -> None:
    """Untagged ports without os-vif's marks, no flows: as before os-vif plugged them."""
    args: list[str] = []
    for plan in plans:
        name = plan.port.device_name
        args += ["--", "clear", "Port", name, "tag", "other_config"]
        args += ["--", "remove", "Interface", name, "external_ids", "iface-id", "attached-mac"]
    switch.vsctl(*args)
    for bridge in ("br-int", "br-tun"):
        sh("ovs-ofctl", "del-flows", switch.mgmt(bridge))


def os_vif_marks(switch: PrivateOvs, plans: list[PortPlan]) -> None:
    args: list[str] = []
    for plan in plans:
        port = plan.port
        args += ["--", "set", "Interface", port.device_name, f"external_ids:iface-id={port.id}"]
        args += [f"external_ids:attached-mac={port.mac_address}"]
    switch.vsctl(*args)


def driver(conf: cfg.ConfigOpts) -> OpenvswitchDriver:
    d = OpenvswitchDriver(conf)
    d.initialize()
    return d


def run_driver(
    switch: PrivateOvs, conf: cfg.ConfigOpts, nets: list[NetworkPlan], plans: list[PortPlan]
) -> dict[str, Any]:
    d = driver(conf)
    # as the agent at the end of its first full pass (netagent.agent.heap): the replica is
    # examined then, not by a collection that falls inside a later pass
    heap.settle_long_lived()
    reported: set[str] = set()
    d.watch_ports(reported.add)
    os_vif_marks(switch, plans)
    deadline = time.monotonic() + 60
    while not {p.port.id for p in plans} <= reported:
        if time.monotonic() > deadline:
            raise RuntimeError("the Interface monitor did not report every port")
        time.sleep(0.01)
    settle()
    before = (d.ovsdb_transactions, d.flow_changes)
    start, cpu = time.monotonic(), cpu_seconds()
    d.check_integrity()
    d.begin_pass()
    assert not d.ensure_networks(nets).failed
    out = d.plug_ports(plans)
    d.end_pass()
    seconds = time.monotonic() - start
    cpu = cpu_seconds() - cpu
    assert not out.failed, list(out.failed.items())[:3]
    return {
        "seconds": seconds,
        "cpu": cpu,
        "ovsdb_transactions": d.ovsdb_transactions - before[0],
        "flow_changes": d.flow_changes - before[1],
        "driver": d,
    }


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and its finished children (ovs-vsctl;
    the driver forks nothing): the client side's cost, less moved by the machine's load
    than wall time.
    ovsdb-server's and ovs-vswitchd's work is in neither side's figure."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def settle() -> None:
    """Let ovs-vswitchd finish what the untimed setup made it do (both sides wait)."""
    time.sleep(0.5)


def run_vsctl(
    switch: PrivateOvs, plans: list[PortPlan], vlans: dict[str, int]
) -> tuple[float, float]:
    args: list[str] = []
    for plan in plans:
        args += [
            "--",
            "set",
            "Port",
            plan.port.device_name,
            f"tag={vlans[plan.network.id]}",
            f"other_config:net_uuid={plan.network.id}",
        ]
    settle()
    start, cpu = time.monotonic(), cpu_seconds()
    # straight to the database socket, like the driver (no "ip netns exec" in front)
    sh("ovs-vsctl", f"--db={switch.connection}", "--timeout=20", *args)
    return time.monotonic() - start, cpu_seconds() - cpu


def run_ovs_lib(switch: PrivateOvs, plans: list[PortPlan], vlans: dict[str, int]) -> float | None:
    python = NEUTRON_VENV / "bin" / "python"
    if not python.exists():
        return None
    ports = [[p.port.device_name, vlans[p.network.id], p.network.id] for p in plans]
    out = sh(str(python), "-c", OVS_LIB, switch.connection, stdin=json.dumps(ports))
    return float(json.loads(out.strip().splitlines()[-1])["seconds"])


def load() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ports", default="500", help="comma-separated port counts")
    parser.add_argument("--restart-ports", type=int, default=1000, help="0: no restart figure")
    parser.add_argument("--networks", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-ovs-lib", action="store_true", help="skip Neutron's ovs_lib")
    args = parser.parse_args()
    counts = [int(c) for c in args.ports.split(",")]
    netns = f"nabench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    sh("ip", "netns", "add", netns)
    switch = PrivateOvs(netns)
    try:
        switch.start()
        conf = cfg.ConfigOpts()
        ovs_conf.register_opts(conf)
        conf([])
        for key, value in (
            ("datapath_type", "netdev"),
            ("local_ip", "198.18.0.1"),
            ("ovsdb_connection", switch.connection),
        ):
            conf.set_override(key, value, group="ovs")
        networks = [
            Network(
                id=str(uuid.uuid4()),
                name="",
                network_type=NetworkType.VXLAN,
                segmentation_id=1000 + i,
                physical_network=None,
                mtu=1450,
            )
            for i in range(args.networks)
        ]
        nets = [NetworkPlan(n, {"peer": ipaddress.ip_address("198.18.0.2")}) for n in networks]
        driver(conf)._ovsdb.close()  # creates br-int, br-tun
        plans = make_ports(switch, networks, max([*counts, args.restart_ports]))
        vlans = {n.id: i + 1 for i, n in enumerate(networks)}
        for count in counts:
            sample = plans[:count]
            results: dict[str, list[float]] = {"driver": [], "vsctl": [], "ovs_lib": []}
            cpu: dict[str, list[float]] = {"driver": [], "vsctl": []}
            writes: dict[str, Any] = {}
            load_before = load()
            for _ in range(args.repeat):
                reset(switch, plans)
                measured = run_driver(switch, conf, nets, sample)
                results["driver"].append(measured["seconds"])
                cpu["driver"].append(measured["cpu"])
                writes = {k: measured[k] for k in ("ovsdb_transactions", "flow_changes")}
                measured["driver"]._ovsdb.close()
                reset(switch, plans)
                os_vif_marks(switch, sample)
                wall, used = run_vsctl(switch, sample, vlans)
                results["vsctl"].append(wall)
                cpu["vsctl"].append(used)
                reset(switch, plans)
                os_vif_marks(switch, sample)
                lib = None if args.no_ovs_lib else run_ovs_lib(switch, sample, vlans)
                if lib is not None:
                    results["ovs_lib"].append(lib)
            best = {k: min(v) for k, v in results.items() if v}
            line: dict[str, Any] = {
                "ports": count,
                "networks": args.networks,
                "repeat": args.repeat,
                **{f"{k}_s": round(v, 4) for k, v in best.items()},
                **{
                    f"{k}_median_s": round(statistics.median(v), 4)
                    for k, v in results.items()
                    if v
                },
                **{f"{k}_cpu_s": round(min(v), 4) for k, v in cpu.items()},
                "driver_pass_writes": writes,
                "load_avg_1min": load_before,
            }
            line["driver_vs_vsctl"] = round(best["driver"] / best["vsctl"], 2)
            line["median_driver_vs_vsctl"] = round(
                statistics.median(results["driver"]) / statistics.median(results["vsctl"]), 2
            )
            if "ovs_lib" in best:
                line["ovs_lib_vs_driver"] = round(best["ovs_lib"] / best["driver"], 1)
            print(json.dumps(line), flush=True)

        if args.restart_ports:
            restart(switch, conf, nets, plans[: args.restart_ports])
    finally:
        switch.stop()
        subprocess.run(["ip", "netns", "delete", netns], check=False)


def restart(
    switch: PrivateOvs, conf: cfg.ConfigOpts, nets: list[NetworkPlan], plans: list[PortPlan]
) -> None:
    """Everything wired, then a new driver (agent restart) finds nothing to do."""
    reset(switch, plans)
    load_before = load()
    first = run_driver(switch, conf, nets, plans)
    first["driver"]._ovsdb.close()
    start = time.monotonic()
    again = OpenvswitchDriver(conf)
    again.initialize()
    again.begin_pass()
    assert not again.ensure_networks(nets).failed
    assert not again.plug_ports(plans).failed
    again.end_pass()
    again.sweep(nets, wanted_devices={p.port.device_name for p in plans})
    seconds = time.monotonic() - start
    print(
        json.dumps(
            {
                "restart_ports": len(plans),
                "restart_s": round(seconds, 3),
                "ovsdb_transactions": again.ovsdb_transactions,
                "flow_changes": again.flow_changes,
                "load_avg_1min": load_before,
            }
        )
    )
    again._ovsdb.close()


if __name__ == "__main__":
    main()

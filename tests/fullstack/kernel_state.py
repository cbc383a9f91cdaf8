"""A host namespace's netagent-relevant kernel state, normalized so that two hosts built
the same way compare equal (tests/fullstack/churn.py compares a churned host with a fresh
agent's): links and bridge ports, forwarding and neighbour entries, the iptables,
ip6tables and ebtables tables (nft backend), the ipsets.

Left out is only what the kernel or the hypervisor decides and netagent does not:
ifindexes, bridge-port numbers and timers, counters, the order in which nft lists
chains, the random MAC of a new VXLAN device, an ipset's random hash seed, the kind of
the hypervisor's device and the multicast entries of its link-local address, learned
forwarding entries.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fullstack import harness

#: the hypervisor's own interfaces in a host namespace, not netagent's
HOST_LINKS = ("lo", "eth-ul", "eth-ul-peer")
#: attributes of a link that the kernel keeps changing (timers) or numbers by creation
#: order (ids of bridge ports, ifindexes): not part of the state netagent builds
_VOLATILE = re.compile(
    r"(timer|_id$|^id$|^no$|^port_no$|^port_id$|^designated_|^root_port$|^root_path_cost$"
    r"|^topology_change|^group_addr$|^state$|^ifindex$|^link_index$)"
)


def run_in(host_ns: str, *argv: str) -> str:
    return harness.run("ip", "netns", "exec", host_ns, *argv, timeout=60).stdout


def _filtered(info: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (info or {}).items() if not _VOLATILE.search(k)}


def _links(netns: str) -> tuple[dict[str, Any], set[str]]:
    out: dict[str, Any] = {}
    own_macs: set[str] = set()
    for name, link in harness.links(netns).items():
        if name in HOST_LINKS:
            continue
        info = link.get("linkinfo", {})
        entry: dict[str, Any] = {
            "master": link.get("master"),
            "up": "UP" in link.get("flags", []),
            "mtu": link.get("mtu"),
            "address": link.get("address"),
            "port": _filtered(info.get("info_slave_data")),
        }
        if name.startswith("tap"):
            # the hypervisor's device: veth to a VM here, a persistent tap in the fresh
            # host; its kind and type data are the hypervisor's choice, not netagent's
            own_macs.add(str(link.get("address")))
        elif info.get("info_kind") == "vxlan":
            # the kernel gives a VXLAN device a random MAC when it is created
            own_macs.add(str(entry.pop("address")))
        if not name.startswith("tap"):
            entry["kind"] = info.get("info_kind")
            entry["info"] = _filtered(info.get("info_data"))
        out[name] = entry
    return out, own_macs


def _fdb(netns: str, own_macs: set[str]) -> list[str]:
    """Entries netagent or the kernel put there for netagent's devices; not those learned
    from traffic, nor the kernel's own entries for random MACs (VXLAN devices, the
    hypervisor's taps) and for the multicast groups of the hypervisor's taps (a VM's veth
    has IPv6 link-local addresses, a tap nobody opened has none)."""
    raw = harness.run("bridge", "-n", netns, "-j", "fdb", "show").stdout
    entries = set()
    for e in json.loads(raw or "[]"):
        if e.get("ifname") in HOST_LINKS or not e.get("state") or e.get("mac") in own_macs:
            continue
        if str(e.get("ifname")).startswith("tap") and "self" in e.get("flags", []):
            continue
        entries.add(
            " ".join(
                str(e.get(k, "")) for k in ("mac", "ifname", "master", "dst", "vlan", "state")
            )
            + " "
            + ",".join(sorted(e.get("flags", [])))
        )
    return sorted(entries)


def _neighbours(netns: str) -> list[str]:
    raw = harness.run("ip", "-n", netns, "-j", "neigh", "show", "nud", "permanent").stdout
    return sorted(
        f"{e.get('dst')} {e.get('dev')} {e.get('lladdr')}"
        for e in json.loads(raw or "[]")
        if e.get("dev") not in HOST_LINKS
    )


def _rules(text: str) -> dict[str, Any]:
    """``*-save`` output by table: its chains (policy, no counters) and each chain's rules
    in order; chains sorted (nft lists them in creation order, which a restart changes)."""
    tables: dict[str, dict[str, Any]] = {}
    table: dict[str, Any] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip() or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = tables.setdefault(line[1:], {"chains": {}, "rules": {}})
        elif line.startswith(":"):
            name, _, policy = line[1:].partition(" ")
            table["chains"][name] = re.sub(r"\s*\[\d+:\d+\]$", "", policy)
        elif line.startswith("-A "):
            chain = line.split()[1]
            table["rules"].setdefault(chain, []).append(re.sub(r"^\[\d+:\d+\] ", "", line))
    for table in tables.values():
        table["chains"] = dict(sorted(table["chains"].items()))
        table["rules"] = dict(sorted(table["rules"].items()))
    return tables


def dump(netns: str) -> dict[str, Any]:
    """The host namespace's netagent-relevant kernel state, normalized for comparison."""
    links, own_macs = _links(netns)
    return {
        "links": links,
        "fdb": _fdb(netns, own_macs),
        "neighbours": _neighbours(netns),
        "iptables": _rules(run_in(netns, "iptables-nft-save")),
        "ip6tables": _rules(run_in(netns, "ip6tables-nft-save")),
        "ebtables": _rules(run_in(netns, "ebtables-nft-save")),
        # initval: the random seed of the set's hash, chosen when it is created
        "ipsets": sorted(
            re.sub(r" initval 0x[0-9a-f]+", "", line)
            for line in run_in(netns, "ipset", "save").splitlines()
        ),
    }


def differences(got: dict[str, Any], want: dict[str, Any], path: str = "") -> list[str]:
    """Where two dumps differ, one line per leaf (empty: identical)."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for key in sorted(got.keys() | want.keys(), key=str):
            where = f"{path}/{key}"
            if key not in want:
                out.append(f"{where}: only in the churned host: {json.dumps(got[key])[:300]}")
            elif key not in got:
                out.append(f"{where}: only in the fresh host: {json.dumps(want[key])[:300]}")
            else:
                out.extend(differences(got[key], want[key], where))
        return out
    if isinstance(got, list) and isinstance(want, list) and got != want:
        if all(isinstance(x, str) for x in got + want) and path.startswith(
            ("/fdb", "/neighbours", "/ipsets")
        ):
            extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
            return [f"{path}: only churned {extra[:10]}; only fresh {missing[:10]}"]
        return [f"{path}: churned {json.dumps(got)[:400]} != fresh {json.dumps(want)[:400]}"]
    return [] if got == want else [f"{path}: churned {got!r} != fresh {want!r}"]

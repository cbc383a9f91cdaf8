"""The standalone state file: YAML or JSON describing a whole deployment.

Format: ``doc/state-file.md``. Every object is parsed on its own by the model; a bad
object (or one referring to something missing or bad) is reported and skipped, the valid
ones are kept. Only a file that cannot be read, is not YAML, or does not have the expected
top-level layout fails as a whole (:class:`StateFileError`), so a damaged file never looks
like an empty deployment.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from typing import Generic, Protocol, TypeVar

import yaml

from netagent.common import names
from netagent.common.exceptions import NetagentError
from netagent.model import (
    AddressGroup,
    Agent,
    DesiredState,
    FloatingIP,
    ModelError,
    Network,
    Port,
    Router,
    RouterPort,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from netagent.model.network import ipv6_mtu_problem
from netagent.model.validate import show

T = TypeVar("T")

#: Larger files are refused rather than parsed.
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Files with more YAML nodes (scalars, lists, mappings; an alias counts as the nodes it
#: repeats) are refused before any object is built: 5,000 one-address ports are ~115,000.
MAX_NODES = 800_000
#: libyaml when PyYAML was built with it (about 10x faster than the pure-Python loader).
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_COLLECTION_START = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_COLLECTION_END = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
SECTIONS = (
    "networks",
    "subnets",
    "address_groups",
    "security_groups",
    "security_group_rules",
    "ports",
    "routers",
    "floatingips",
    "agents",
)
GATEWAY_OWNER = "network:router_gateway"
INTERFACE_OWNER = "network:router_interface"


class StateFileError(NetagentError):
    """The state file as a whole is unusable (unreadable, not YAML, wrong layout).

    :param path: the file (or the origin given to :func:`parse_state`).
    :param reason: what is wrong.
    """

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclasses.dataclass(frozen=True, slots=True)
class LoadResult:
    """The valid part of a state file and the errors of the objects left out.

    :ivar errors: one :class:`ModelError` per skipped object, its ``location`` naming the
        file and the list entry (e.g. ``"state.yaml ports[3]"``).
    """

    state: DesiredState
    errors: tuple[ModelError, ...] = ()
    #: (device, inode, size, mtime, ctime) of the file whose bytes were read (None when
    #: not read from a file)
    signature: tuple[int, int, int, int, int] | None = None


class ChangedWhileReadError(StateFileError):
    """The file was written in place while its bytes were read: read it again later."""


def file_signature(st: os.stat_result) -> tuple[int, int, int, int, int]:
    """What tells two versions of a file apart (a rename changes the inode)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclasses.dataclass(slots=True)
class _Entry(Generic[T]):
    """A parsed object and where it came from (``obj`` is replaced while linking)."""

    location: str
    obj: T


def load_state(path: str | os.PathLike[str]) -> LoadResult:
    """Read and parse a YAML or JSON state file.

    :param path: the file.
    :returns: the valid objects and the errors of the skipped ones.
    :raises ChangedWhileReadError: written in place during the read.
    :raises StateFileError: unreadable, too large, not UTF-8, not YAML, or bad layout.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as stream:
            before = file_signature(os.fstat(stream.fileno()))
            data = stream.read(MAX_FILE_BYTES + 1)
            after = file_signature(os.fstat(stream.fileno()))
    except OSError as exc:
        raise StateFileError(where, f"cannot read: {exc.strerror or exc}") from exc
    # The bytes, not the path, must be one version: a file replaced by a rename after the
    # open leaves the opened one whole (and is read at the next poll), so a writer faster
    # than the parse never starves the reader.
    if before != after:
        raise ChangedWhileReadError(where, "changed while being read")
    if len(data) > MAX_FILE_BYTES:
        raise StateFileError(where, f"larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateFileError(where, f"not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        nodes = count_nodes(text, MAX_NODES)
        if nodes > MAX_NODES:
            raise StateFileError(where, f"more than {MAX_NODES} YAML nodes (aliases expanded)")
        document = yaml.load(text, Loader=_LOADER)  # noqa: S506 -- a safe loader
    except yaml.YAMLError as exc:
        raise StateFileError(where, f"not valid YAML/JSON: {exc}") from exc
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these for odd scalars (e.g. a date like 2026-13-45)
        # and for very deep nesting.
        raise StateFileError(where, f"not valid YAML/JSON: {type(exc).__name__}") from exc
    return dataclasses.replace(parse_state(document, where), signature=before)


def count_nodes(text: str, limit: int) -> int:
    """The YAML nodes of ``text``, an alias counting as the nodes of what it repeats;
    stops as soon as ``limit`` is passed (then returns a number above it).

    It reads the parser's event stream, so nothing is built and memory stays small
    whatever the file holds (an alias bomb, a flat list of millions of items).
    """
    sizes: dict[str, int] = {}
    starts: list[tuple[int, str | None]] = []
    total = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            total += sizes.get(event.anchor or "", 1)
        elif isinstance(event, _COLLECTION_START):
            starts.append((total, event.anchor))
            total += 1
        elif isinstance(event, _COLLECTION_END):
            start, anchor = starts.pop()
            if anchor is not None:
                sizes[anchor] = total - start
            continue
        else:
            continue
        if total > limit:
            break
    return total


def parse_state(document: object, origin: str) -> LoadResult:
    """Parse an already decoded state document.

    :param document: the decoded YAML/JSON value.
    :param origin: where it came from; used in error locations.
    :raises StateFileError: not a mapping, an unknown top-level key, or a section that
        is not a list.
    """
    if not isinstance(document, Mapping):
        kind = "empty" if document is None else type(document).__name__
        raise StateFileError(origin, f"the top level must be a mapping, got {kind}")
    for key, value in document.items():
        if isinstance(key, str) and key.startswith("x-"):
            continue
        if key not in SECTIONS:
            raise StateFileError(origin, f"unknown top-level key {show(key)}")
        if value is not None and not isinstance(value, list):
            raise StateFileError(origin, f"{key} must be a list, got {type(value).__name__}")
    return _Assembler(document, origin).run()


class _Assembler:
    """Parses each section, then drops objects whose references do not resolve."""

    def __init__(self, document: Mapping[object, object], origin: str) -> None:
        self.document = document
        self.origin = origin
        self.errors: list[ModelError] = []

    def run(self) -> LoadResult:
        networks = self.parse("networks", Network.from_api, _id)
        subnets = self.parse("subnets", Subnet.from_api, _id)
        ipv6_subnet = {
            e.obj.network_id: f"IPv6 subnet {e.obj.id}"
            for e in reversed(subnets.values())
            if e.obj.ip_version == 6
        }
        networks = self.keep("network", networks, lambda n: _mtu_problem(n, ipv6_subnet.get(n.id)))
        subnets = self.keep(
            "subnet", subnets, lambda s: _ref(s.network_id, networks, "network_id", "network")
        )
        address_groups = self.parse("address_groups", AddressGroup.from_api, _id)
        groups = self.security_groups(address_groups)
        ports = self.ports(networks, subnets, groups)
        routers = self.routers(networks, subnets, ports)
        fips = self.parse("floatingips", FloatingIP.from_api, _id)
        fips = self.keep("floatingip", fips, lambda f: _fip_problem(f, networks, ports, routers))
        for fip_entry in fips.values():
            fip = fip_entry.obj
            if fip.router_id is not None:
                router = routers[fip.router_id]
                router.obj = dataclasses.replace(
                    router.obj, floating_ips=(*router.obj.floating_ips, fip)
                )
        agents = self.parse("agents", Agent.from_api, _host)
        state = DesiredState.build(
            networks=_objs(networks),
            subnets=_objs(subnets),
            ports=_objs(ports),
            security_groups=_objs(groups),
            address_groups=_objs(address_groups),
            routers=_objs(routers),
            floatingips=_objs(fips),
            agents=_objs(agents),
        )
        return LoadResult(state, tuple(self.errors))

    def parse(
        self, section: str, parser: Callable[[object], T], key: Callable[[T], str]
    ) -> dict[str, _Entry[T]]:
        raw = self.document.get(section) or []
        assert isinstance(raw, list)
        result: dict[str, _Entry[T]] = {}
        for index, item in enumerate(raw):
            location = f"{self.origin} {section}[{index}]"
            try:
                obj = parser(item)
            except ModelError as exc:
                self.errors.append(exc.with_location(location))
                continue
            obj_key = key(obj)
            if obj_key in result:
                kind = section.rstrip("s")
                field = "host" if section == "agents" else "id"
                reason = f"duplicate of {result[obj_key].location}"
                self.errors.append(ModelError(kind, obj_key, field, reason, location))
                continue
            result[obj_key] = _Entry(location, obj)
        return result

    def keep(
        self,
        kind: str,
        entries: dict[str, _Entry[T]],
        problem: Callable[[T], tuple[str, str] | None],
    ) -> dict[str, _Entry[T]]:
        """Keep the entries for which ``problem`` returns ``None``; report the others."""
        kept: dict[str, _Entry[T]] = {}
        for key, entry in entries.items():
            found = problem(entry.obj)
            if found is None:
                kept[key] = entry
            else:
                self.errors.append(ModelError(kind, key, found[0], found[1], entry.location))
        return kept

    def security_groups(
        self, address_groups: Mapping[str, object]
    ) -> dict[str, _Entry[SecurityGroup]]:
        groups = self.parse("security_groups", SecurityGroup.from_api, _id)
        rules = self.parse("security_group_rules", _standalone_rule, _rule_id)
        for rule_id, entry in rules.items():
            rule = entry.obj
            if rule.security_group_id is None or rule.security_group_id not in groups:
                reason = f"unknown security group {rule.security_group_id}"
                self.errors.append(
                    ModelError(
                        "security_group_rule", rule_id, "security_group_id", reason, entry.location
                    )
                )
                continue
            group = groups[rule.security_group_id]
            group.obj = dataclasses.replace(group.obj, rules=(*group.obj.rules, rule))
        # Dropping a group can break a group referring to it: repeat until stable.
        while True:
            current = dict(groups)
            groups = self.keep(
                "security_group",
                current,
                functools.partial(_remote_problem, groups=current, address_groups=address_groups),
            )
            if len(groups) == len(current):
                return groups

    def ports(
        self,
        networks: Mapping[str, _Entry[Network]],
        subnets: Mapping[str, _Entry[Subnet]],
        groups: Mapping[str, object],
    ) -> dict[str, _Entry[Port]]:
        ports = self.parse("ports", Port.from_api, _id)
        taken: dict[tuple[str, str], str] = {}

        def problem(port: Port) -> tuple[str, str] | None:
            found = _port_problem(port, networks, subnets, groups)
            claims = [("mac_address", (port.network_id, port.mac_address))]
            claims += [
                (f"fixed_ips[{i}]", (f.subnet_id or "", str(f.ip_address)))
                for i, f in enumerate(port.fixed_ips)
            ]
            if port.host:
                claims.append(("id", (port.host, names.tap_device(port.id))))
            for field, claim in claims:
                if found is None and claim in taken:
                    found = (field, f"{claim[1]} already used by port {taken[claim]}")
            if found is None:
                taken.update((claim, port.id) for _, claim in claims)
            return found

        return self.keep("port", ports, problem)

    def routers(
        self,
        networks: Mapping[str, _Entry[Network]],
        subnets: Mapping[str, _Entry[Subnet]],
        ports: Mapping[str, _Entry[Port]],
    ) -> dict[str, _Entry[Router]]:
        routers = self.parse("routers", Router.from_api, _id)
        owned: dict[str, list[Port]] = {}
        for port_entry in ports.values():
            port = port_entry.obj
            if port.device_owner in (GATEWAY_OWNER, INTERFACE_OWNER) and port.device_id:
                owned.setdefault(port.device_id, []).append(port)

        def router_port(port: Port) -> RouterPort:
            used = [
                subnets[f.subnet_id or ""].obj for f in port.fixed_ips if f.subnet_id in subnets
            ]
            # the other subnets of the network, as sync_routers gives them
            extra = [
                entry.obj
                for _, entry in sorted(subnets.items())
                if entry.obj.network_id == port.network_id and entry.obj not in used
            ]
            return RouterPort(
                port,
                tuple(dict.fromkeys(used)),
                networks[port.network_id].obj.mtu,
                tuple(extra),
            )

        def problem(router: Router) -> tuple[str, str] | None:
            mine = owned.get(router.id, [])
            gateways = [p for p in mine if p.device_owner == GATEWAY_OWNER]
            if len(gateways) > 1:
                return (
                    "gateway",
                    f"more than one gateway port: {', '.join(p.id for p in gateways)}",
                )
            external = router.external_network_id
            if external is not None and external not in networks:
                return ("external_gateway_info.network_id", f"unknown network {external}")
            if gateways and external not in (None, gateways[0].network_id):
                return (
                    "external_gateway_info.network_id",
                    "differs from the gateway port's network",
                )
            return None

        routers = self.keep("router", routers, problem)
        for entry in routers.values():
            mine = sorted(owned.get(entry.obj.id, []), key=lambda p: p.id)
            gateway = next((router_port(p) for p in mine if p.device_owner == GATEWAY_OWNER), None)
            entry.obj = dataclasses.replace(
                entry.obj,
                gateway=gateway,
                interfaces=tuple(
                    router_port(p) for p in mine if p.device_owner == INTERFACE_OWNER
                ),
                external_network_id=gateway.network_id
                if gateway
                else entry.obj.external_network_id,
            )
        return routers


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _id(obj: _HasId) -> str:
    return obj.id


def _host(agent: Agent) -> str:
    return agent.host


def _rule_id(rule: SecurityGroupRule) -> str:
    return rule.id or ""


def _standalone_rule(data: object) -> SecurityGroupRule:
    """A rule of the top-level ``security_group_rules`` list: ``id`` and
    ``security_group_id`` are required there."""
    rule = SecurityGroupRule.from_api(data)
    for field in ("id", "security_group_id"):
        if getattr(rule, field) is None:
            raise ModelError("security_group_rule", rule.id, field, "required field is missing")
    return rule


def _objs(entries: Mapping[str, _Entry[T]]) -> list[T]:
    return [entry.obj for entry in entries.values()]


def _ref(key: str, table: Mapping[str, object], field: str, what: str) -> tuple[str, str] | None:
    return None if key in table else (field, f"unknown {what} {key}")


def _remote_problem(
    group: SecurityGroup, groups: Mapping[str, object], address_groups: Mapping[str, object]
) -> tuple[str, str] | None:
    for index, rule in enumerate(group.rules):
        field = f"security_group_rules[{index}]"
        if rule.remote_group_id is not None and rule.remote_group_id not in groups:
            return (f"{field}.remote_group_id", f"unknown security group {rule.remote_group_id}")
        if (
            rule.remote_address_group_id is not None
            and rule.remote_address_group_id not in address_groups
        ):
            reason = f"unknown address group {rule.remote_address_group_id}"
            return (f"{field}.remote_address_group_id", reason)
    return None


def _mtu_problem(network: Network, ipv6_user: str | None) -> tuple[str, str] | None:
    why = ipv6_mtu_problem(network, ipv6_user)
    return None if why is None else ("mtu", why)


def _port_problem(
    port: Port,
    networks: Mapping[str, object],
    subnets: Mapping[str, _Entry[Subnet]],
    groups: Mapping[str, object],
) -> tuple[str, str] | None:
    found = _ref(port.network_id, networks, "network_id", "network")
    if found:
        return found
    for index, fixed in enumerate(port.fixed_ips):
        field = f"fixed_ips[{index}]"
        subnet_entry = subnets.get(fixed.subnet_id or "")
        if subnet_entry is None:
            return (f"{field}.subnet_id", f"unknown subnet {fixed.subnet_id}")
        subnet = subnet_entry.obj
        if subnet.network_id != port.network_id:
            return (f"{field}.subnet_id", f"subnet {subnet.id} is on another network")
        if fixed.ip_address not in subnet.cidr:
            return (f"{field}.ip_address", f"{fixed.ip_address} is not in {subnet.cidr}")
    for index, group_id in enumerate(port.security_groups):
        found = _ref(group_id, groups, f"security_groups[{index}]", "security group")
        if found:
            return found
    return None


def _fip_problem(
    fip: FloatingIP,
    networks: Mapping[str, object],
    ports: Mapping[str, _Entry[Port]],
    routers: Mapping[str, _Entry[Router]],
) -> tuple[str, str] | None:
    found = _ref(fip.floating_network_id, networks, "floating_network_id", "network")
    if found:
        return found
    if fip.port_id is not None:
        if fip.port_id not in ports:
            return ("port_id", f"unknown port {fip.port_id}")
        if fip.fixed_ip_address not in ports[fip.port_id].obj.addresses:
            return ("fixed_ip_address", f"not an address of port {fip.port_id}")
    if fip.router_id is not None:
        if fip.router_id not in routers:
            return ("router_id", f"unknown router {fip.router_id}")
        if routers[fip.router_id].obj.external_network_id != fip.floating_network_id:
            return ("router_id", "the router has no gateway on floating_network_id")
    return None

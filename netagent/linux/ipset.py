"""ipset manager: netagent's hash:net / hash:ip sets of one namespace, replaced atomically.

Callers declare each set's whole membership (:meth:`IpsetManager.set_members`);
:meth:`IpsetManager.apply` writes one ``ipset restore -exist`` for every set that changed
since the last successful apply. Membership changes without a gap, two ways:

* in place, for a small change to a set this manager has written before (at most
  :data:`IN_PLACE_MAX` members added plus removed, same family, kind and size class):
  ``add``/``del`` of the changed members on the live set. Each is atomic by itself, and
  members that stay are never touched (Neutron edits its sets the same way);
* otherwise (new set, first apply after a restart, large change) the new members go into
  a temporary set (``nt`` instead of ``na`` in the name, as
  :func:`netagent.common.names.ipset_name` gives with ``temporary=True``), which is then
  swapped with the live set and destroyed, all in the same restore.

``hash:net`` refuses a /0, so ``0.0.0.0/0`` and ``::/0`` become their two /1 halves (in
both paths, since both work on the normalised members).

Ordering: a set that is no longer wanted is destroyed only by
:meth:`IpsetManager.destroy_unreferenced`, which callers run after the iptables apply that
removed the rules referencing it; the kernel refuses to destroy a referenced set, and such
a set simply stays pending.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from netagent.common import constants as c
from netagent.linux.iptables import validate as v
from netagent.privileged import ipset as priv

_NEUTRON_SET_RE = re.compile(priv.NEUTRON_SET)

LOG = logging.getLogger(__name__)

KINDS = ("hash:net", "hash:ip")
HASHSIZE = 1024
MAXELEM = 65536
#: Largest number of added + removed members applied in place; above, the set is
#: rebuilt and swapped (one restore line per member either way, but a swap costs a
#: second set's worth of memory and rewrites every member).
IN_PLACE_MAX = 64

Member = (
    str
    | ipaddress.IPv4Network
    | ipaddress.IPv6Network
    | ipaddress.IPv4Address
    | ipaddress.IPv6Address
)


@dataclass(frozen=True)
class _SetSpec:
    family: int
    kind: str
    members: frozenset[str]


@dataclass
class IpsetResult:
    """Outcome of an ipset apply or destroy pass.

    :ivar applied: set names written (or destroyed)
    :ivar failed: set name -> reason; pending until the next call
    :ivar inputs: restore inputs that were run
    """

    applied: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)


def temporary_name(name: str) -> str:
    """The temporary set name used to build ``name``'s replacement (``na...`` → ``nt...``)."""
    return "nt" + v.owned_set_name(name)[len(c.IPSET_PREFIX) :]


def normalize_members(family: int, kind: str, members: Iterable[Member]) -> frozenset[str]:
    """Members as canonical text; /0 split into two /1 halves for hash:net.

    :raises ValueError: bad address, wrong family, or a prefix in a hash:ip set
    """
    out: set[str] = set()
    for member in members:
        if isinstance(member, ipaddress.IPv4Network | ipaddress.IPv6Network):
            net = member  # already a network (host bits are zero by construction)
        else:
            try:
                net = ipaddress.ip_network(member, strict=False)
            except ValueError as exc:
                raise ValueError(f"member: invalid address {member!r}") from exc
        if net.version != family:
            raise ValueError(f"member: {net} is not IPv{family}")
        if kind == "hash:ip":
            if net.prefixlen != net.max_prefixlen:
                raise ValueError(f"member: {net} is a network, set kind is hash:ip")
            out.add(str(net.network_address))
        elif net.prefixlen == 0:
            out.update(str(half) for half in net.subnets(new_prefix=1))
        elif net.prefixlen == net.max_prefixlen:
            out.add(str(net.network_address))
        else:
            out.add(str(net))
    return frozenset(out)


def parse_save(text: str) -> dict[str, _SetSpec]:
    """netagent's sets (``na`` prefix) in ``ipset save`` output: kind, family, members
    (normalised as :func:`normalize_members` does). Lines that do not parse are skipped:
    the set they belong to then simply differs from what was applied."""
    created: dict[str, tuple[int, str]] = {}
    members: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or not words[1].startswith(c.IPSET_PREFIX):
            continue
        name = words[1]
        if words[0] == "create" and len(words) >= 5 and words[3] == "family":
            family = {"inet": 4, "inet6": 6}.get(words[4])
            if family is not None and words[2] in KINDS:
                created[name] = (family, words[2])
        elif words[0] == "add":
            members.setdefault(name, []).append(words[2])
    result: dict[str, _SetSpec] = {}
    for name, (family, kind) in created.items():
        try:
            parsed = normalize_members(family, kind, members.get(name, ()))
        except ValueError:
            continue
        result[name] = _SetSpec(family, kind, parsed)
    return result


def _maxelem(spec: _SetSpec) -> int:
    maxelem = MAXELEM
    while maxelem < len(spec.members):
        maxelem *= 2
    return maxelem


def _in_place_lines(name: str, old: _SetSpec | None, new: _SetSpec) -> list[str] | None:
    """``add``/``del`` lines turning ``old`` into ``new`` on the live set, or None when
    the change has to go through a temporary set and a swap."""
    if old is None or (old.family, old.kind) != (new.family, new.kind):
        return None
    if _maxelem(old) != _maxelem(new):
        return None
    added = new.members - old.members
    removed = old.members - new.members
    if len(added) + len(removed) > IN_PLACE_MAX:
        return None
    return [f"del {name} {m}" for m in sorted(removed)] + [
        f"add {name} {m}" for m in sorted(added)
    ]


def _set_lines(name: str, spec: _SetSpec) -> list[str]:
    inet = "inet" if spec.family == 4 else "inet6"
    create = f"{spec.kind} family {inet} hashsize {HASHSIZE} maxelem {_maxelem(spec)}"
    tmp = temporary_name(name)
    lines = [f"create {name} {create}", f"create {tmp} {create}", f"flush {tmp}"]
    lines += [f"add {tmp} {m}" for m in sorted(spec.members)]
    lines += [f"swap {tmp} {name}", f"destroy {tmp}"]
    return lines


class IpsetManager:
    """netagent's ipsets in one network namespace.

    :param namespace: network namespace name; None is the root namespace
    """

    def __init__(self, namespace: str | None) -> None:
        self.namespace = namespace
        self._desired: dict[str, _SetSpec] = {}
        self._applied: dict[str, _SetSpec] = {}
        self._to_destroy: set[str] = set()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"IpsetManager(namespace={self.namespace!r})"

    def set_members(
        self, name: str, family: int, members: Iterable[Member], kind: str = "hash:net"
    ) -> None:
        """Declare the whole membership of set ``name`` (applied by :meth:`apply`).

        :param name: netagent set name (``na`` prefix, at most 31 characters)
        :param family: 4 or 6
        :param members: addresses or networks of that family
        :param kind: ``hash:net`` or ``hash:ip``
        :raises ValueError: bad name, family, kind or member
        """
        v.owned_set_name(name)
        if len(temporary_name(name)) > c.MAX_IPSET_NAME_LEN:
            raise ValueError(f"set: {name!r} too long")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        spec = _SetSpec(v.family(family), kind, normalize_members(family, kind, members))
        with self._lock:
            self._desired[name] = spec
            self._to_destroy.discard(name)

    def remove_set(self, name: str) -> None:
        """Stop wanting ``name``; :meth:`destroy_unreferenced` destroys it. Idempotent."""
        v.owned_set_name(name)
        with self._lock:
            self._desired.pop(name, None)
            self._to_destroy.add(name)

    def _lines(self, name: str) -> list[str]:
        desired = self._desired[name]
        in_place = _in_place_lines(name, self._applied.get(name), desired)
        return in_place if in_place is not None else _set_lines(name, desired)

    def apply(self) -> IpsetResult:
        """Write every changed set in one ``ipset restore`` (in place, or fill a
        temporary set and swap).

        A failing set is set aside and the others are retried; it is reported in
        ``failed`` and retried by the next apply.
        """
        with self._lock:
            result = IpsetResult()
            pending = sorted(n for n, s in self._desired.items() if self._applied.get(n) != s)
            queue = [pending] if pending else []
            while queue:
                batch = queue.pop(0)
                owners: list[str] = []
                lines: list[str] = []
                for name in batch:
                    set_lines = self._lines(name)
                    owners += [name] * len(set_lines)
                    lines += set_lines
                text = "".join(line + "\n" for line in lines)
                try:
                    priv.restore(self.namespace, text)
                except priv.IpsetError as exc:
                    LOG.warning("ipset restore in namespace %s failed: %s", self.namespace, exc)
                    if len(batch) == 1:
                        name = batch[0]
                        if name in self._applied:
                            # The live set may not be what we believed (destroyed or
                            # edited out of band): rebuild it whole and swap, once.
                            del self._applied[name]
                            queue.insert(0, [name])
                            continue
                        result.failed[name] = str(exc)
                        continue
                    bad = owners[exc.line - 1] if exc.line and exc.line <= len(owners) else None
                    if bad is None:
                        queue[:0] = [[n] for n in batch]
                    else:
                        queue[:0] = [[n for n in batch if n != bad], [bad]]
                    continue
                result.inputs.append(text)
                for name in batch:
                    self._applied[name] = self._desired[name]
                    result.applied.add(name)
                LOG.info(
                    "ipset applied in namespace %s: %d sets written", self.namespace, len(batch)
                )
            return result

    def check(self) -> set[str]:
        """Compare the sets written so far with the kernel (one ``ipset save``).

        A set someone else destroyed, flushed, or added members to or removed members
        from is forgotten as applied, so the next :meth:`apply` rebuilds it whole and
        swaps it in.

        :returns: the names of the sets found changed
        """
        with self._lock:
            if not self._applied:
                return set()
            kernel = parse_save(priv.save(self.namespace))
            damaged = {name for name, spec in self._applied.items() if kernel.get(name) != spec}
            for name in damaged:
                del self._applied[name]
            return damaged

    def destroy_unreferenced(self, sweep: bool = False) -> IpsetResult:
        """Destroy sets no longer wanted; call after the iptables apply that unhooked them.

        :param sweep: also destroy netagent sets found in the kernel that nobody declared
        :returns: ``applied`` = destroyed; ``failed`` = still referenced or other error
        """
        with self._lock:
            result = IpsetResult()
            names = set(self._to_destroy)
            if sweep:
                names |= {
                    n
                    for n in priv.list_names(self.namespace)
                    if n.startswith((c.IPSET_PREFIX, "nt")) and n not in self._desired
                }
            for name in sorted(names):
                try:
                    priv.destroy(self.namespace, name)
                except priv.IpsetError as exc:
                    result.failed[name] = str(exc)
                    continue
                self._to_destroy.discard(name)
                self._applied.pop(name, None)
                result.applied.add(name)
            if result.applied:
                LOG.info(
                    "ipset destroyed in namespace %s: %s",
                    self.namespace,
                    ", ".join(sorted(result.applied)),
                )
            return result


def neutron_lb_sets(namespace: str | None) -> list[str]:
    """The Neutron Linux bridge agent's sets in the namespace (``NIPv4``/``NIPv6``...)."""
    return sorted(n for n in priv.list_names(namespace) if _NEUTRON_SET_RE.fullmatch(n))


def destroy_neutron_lb_sets(namespace: str | None) -> tuple[list[str], dict[str, str]]:
    """Destroy every Neutron Linux bridge agent set of the namespace (a takeover, once no
    rule references them).

    :returns: (sets destroyed, set -> why it was not)
    """
    done: list[str] = []
    failed: dict[str, str] = {}
    for name in neutron_lb_sets(namespace):
        try:
            priv.destroy_neutron(namespace, name)
        except priv.IpsetError as exc:
            failed[name] = str(exc)
        else:
            done.append(name)
    return done, failed

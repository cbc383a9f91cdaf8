"""Which iptables backend netagent programs: decided once at start, the same every time.

``[iptables] backend = auto`` must never move netagent to the other backend under rules it
wrote: the old chains would keep filtering next to the new ones. The choice is made from
what the kernel holds and from netagent's own record (``<state_path>/iptables-backend``),
in this order (:func:`choose`):

1. netagent's chains exist in one backend's tables: that backend (the rules to keep
   managing are there); a record saying otherwise is overruled, with a warning;
2. they exist in both: the recorded backend, else the ``iptables`` alternative's, with a
   warning (the other copy is a leftover ``netagent-cleanup`` removes);
3. none exist, a choice was recorded: the recorded one (a restart, or after a cleanup);
4. none exist, nothing recorded (first start): the backend holding the host's other
   rules when only one does, else the one the ``iptables`` alternative runs (nft when
   unknown).

Legacy tables merely *existing* (any legacy tool run in the namespace creates them, empty)
count for nothing: only rules do. Legacy tables are read only when the kernel lists them,
so looking never creates them. The choice and why are logged at INFO and recorded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import tempfile

from netagent.privileged import iptables as priv

LOG = logging.getLogger(__name__)

RECORD_FILE = "iptables-backend"
#: Tables whose rules count as the host's own (netagent writes filter and raw).
_OWNED_TABLES = ("filter", "raw")


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the decision looks at.

    :ivar recorded: the backend netagent recorded last time, if any
    :ivar owned: backends whose tables hold netagent chains (``na-`` prefix)
    :ivar foreign: backend -> number of rules that are not netagent's
    :ivar alternative: what the ``iptables`` command runs, if known
    """

    recorded: str | None
    owned: frozenset[str]
    foreign: dict[str, int]
    alternative: str | None


@dataclasses.dataclass(frozen=True)
class Choice:
    """The backend, why, and whether the operator should look (``warn``)."""

    backend: str
    reason: str
    warn: bool = False


def choose(facts: Facts) -> Choice:
    """The decision table of the module docstring (pure)."""
    fallback = facts.alternative or "nft"
    if len(facts.owned) == 1:
        (backend,) = facts.owned
        if facts.recorded not in (None, backend):
            return Choice(
                backend,
                f"netagent's chains are in the {backend} tables (the recorded choice "
                f"{facts.recorded} is overruled: the rules to manage are where they are)",
                warn=True,
            )
        return Choice(backend, f"netagent's chains are in the {backend} tables")
    if facts.owned:
        backend = facts.recorded or fallback
        why = "recorded choice" if facts.recorded else "iptables alternative"
        return Choice(
            backend,
            f"netagent's chains are in both nft and legacy tables; keeping the {why} "
            f"{backend} (netagent-cleanup removes the other copy)",
            warn=True,
        )
    if facts.recorded is not None:
        return Choice(facts.recorded, f"recorded choice of an earlier run ({facts.recorded})")
    legacy, nft = facts.foreign.get("legacy", 0), facts.foreign.get("nft", 0)
    if legacy and not nft:
        return Choice("legacy", f"the host's other rules are in legacy tables ({legacy} rules)")
    if nft and not legacy:
        return Choice("nft", f"the host's other rules are in nft tables ({nft} rules)")
    if facts.alternative is not None:
        return Choice(fallback, f"the iptables command runs {fallback}")
    return Choice("nft", "nothing to go by: nft")


def _count(text: str) -> tuple[bool, int]:
    """(netagent chains present, rules that are not netagent's) in save output."""
    owned = False
    foreign = 0
    for line in text.splitlines():
        if line.startswith(":na-"):
            owned = True
        elif line.startswith("-A ") and not line.startswith("-A na-") and "-j na-" not in line:
            foreign += 1
    return owned, foreign


def gather(namespace: str | None, recorded: str | None) -> Facts:
    """Read the kernel's facts (read-only; legacy tables only when they exist)."""
    owned: set[str] = set()
    foreign = {"nft": 0, "legacy": 0}
    existing = priv.legacy_tables(namespace)
    for backend in priv.BACKENDS:
        for family in (4, 6):
            tables = _OWNED_TABLES if backend == "nft" else existing.get(family, [])
            for table in tables:
                mine, other = _count(priv.save(namespace, backend, family, table))
                if mine:
                    owned.add(backend)
                foreign[backend] += other
    return Facts(recorded, frozenset(owned), foreign, priv.alternative())


def read_record(state_path: str | None) -> str | None:
    """The recorded backend; None when absent or not one of the backends."""
    if state_path is None:
        return None
    try:
        with open(os.path.join(state_path, RECORD_FILE), encoding="ascii") as fh:
            value = fh.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if value not in priv.BACKENDS:
        LOG.warning("Ignoring %s: %r is not a backend", RECORD_FILE, value[:20])
        return None
    return value


def write_record(state_path: str, backend: str) -> None:
    """Record ``backend`` atomically (mode 0600, like every state file)."""
    fd, tmp = tempfile.mkstemp(dir=state_path, prefix=f".{RECORD_FILE}.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(backend + "\n")
        os.replace(tmp, os.path.join(state_path, RECORD_FILE))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def resolve(configured: str, namespace: str | None, state_path: str | None) -> str:
    """The backend to program in ``namespace``: ``configured`` unless ``auto``, then
    :func:`choose`. Logs the choice and why, and records it in ``state_path``.

    :raises ValueError: ``configured`` is not auto, nft or legacy
    """
    if configured != "auto" and configured not in priv.BACKENDS:
        raise ValueError(f"backend must be auto, nft or legacy, got {configured!r}")
    recorded = read_record(state_path)
    if configured == "auto":
        choice = choose(gather(namespace, recorded))
        LOG.log(
            logging.WARNING if choice.warn else logging.INFO,
            "iptables backend %s (auto): %s",
            choice.backend,
            choice.reason,
        )
        backend = choice.backend
    else:
        backend = configured
        LOG.info("iptables backend %s (configured)", backend)
    if state_path is not None and recorded != backend:
        try:
            write_record(state_path, backend)
        except OSError as exc:
            LOG.warning("Could not record the iptables backend in %s: %s", state_path, exc)
    return backend

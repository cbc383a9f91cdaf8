"""The standalone source: a state file, re-read whenever it changes.

The file is polled with ``stat()`` every ``[file_source] poll_interval`` seconds; a change of
inode, size, mtime or ctime triggers a re-read (an editor that replaces the file by a rename
changes the inode; an in-place write changes mtime). Polling a single ``stat`` is cheap and,
unlike inotify, follows a path whose directory is replaced or a file on a network share.

Bad input never reaches the agent as a loss of state:

* a file that cannot be used at all (unreadable, not YAML, bad layout) keeps the last good
  snapshot; the error is logged once until it changes;
* a read that fails with an OS error (EMFILE, EIO, EACCES...) says nothing about the
  content, so it is retried with backoff (1 s doubling to 60 s) even if the file does not
  change again;
* an object whose new version is invalid keeps its last good version (when it had one),
  so a typo in one port does not unplug it; the error is logged once per change.

Write the file atomically (write a temporary file, then rename) so that a half-written
file is never read. A read is one version of the file: an in-place write during the read
discards it (retried at the next poll); a rename during the parse does not, the version
read is delivered and the newer one read at the next poll, so a writer that replaces the
file more often than a parse takes (a large file) still gets every poll a newer state.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping

from netagent.agent.backoff import Backoff
from netagent.agent.source import SourceUpdate, UpdateCallback
from netagent.model import DesiredState, ModelError, Port
from netagent.model.state import frozen_map
from netagent.sources import statefile

LOG = logging.getLogger(__name__)

#: ModelError.kind -> the DesiredState mapping holding objects of that kind.
_COLLECTIONS = {
    "network": "networks",
    "subnet": "subnets",
    "port": "ports",
    "security_group": "security_groups",
    "address_group": "address_groups",
    "router": "routers",
    "floatingip": "floatingips",
}
_SECTION_RE = re.compile(r" (\w+)\[\d+\]$")

Signature = tuple[int, int, int, int, int]


def _signature(path: str) -> Signature | None:
    try:
        return statefile.file_signature(os.stat(path))
    except OSError:
        return None


def _error_key(error: ModelError) -> tuple[str, str | None, str, str]:
    """An error without its location: list positions shift when other objects change."""
    return (error.kind, error.object_id, error.field, error.reason)


def _collection(error: ModelError) -> str | None:
    if error.kind in _COLLECTIONS:
        return _COLLECTIONS[error.kind]
    match = _SECTION_RE.search(error.location or "")
    if match and match.group(1) in _COLLECTIONS.values():
        return match.group(1)
    return None


def merge_last_good(
    new: DesiredState, errors: tuple[ModelError, ...], previous: DesiredState | None
) -> tuple[DesiredState, dict[tuple[str, str | None, str, str], str]]:
    """Put back the previous version of every object whose new version is invalid.

    An object is put back only when the new state has no valid object under its id. A bad
    security-group rule puts back the previous version of the group that held it.

    :returns: the merged state, and for each error that was covered, the kept object's
        ``"<collection> <id>"``.
    """
    if previous is None:
        return new, {}
    replaced: dict[str, dict[str, object]] = {}
    covered: dict[tuple[str, str | None, str, str], str] = {}
    for error in errors:
        if error.object_id is None:
            continue
        collection = _collection(error)
        object_id = error.object_id
        if error.kind == "security_group_rule":
            collection = "security_groups"
            holder = next(
                (
                    g.id
                    for g in previous.security_groups.values()
                    if any(r.id == object_id for r in g.rules)
                ),
                None,
            )
            if holder is None:
                continue
            object_id = holder
        if collection is None:
            continue
        old_objects: Mapping[str, object] = getattr(previous, collection)
        new_objects: Mapping[str, object] = getattr(new, collection)
        if object_id in old_objects and (
            object_id not in new_objects or error.kind == "security_group_rule"
        ):
            replaced.setdefault(collection, dict(new_objects))[object_id] = old_objects[object_id]
            covered[_error_key(error)] = f"{collection} {object_id}"
    if not replaced:
        return new, covered
    changes = {name: frozen_map(objects) for name, objects in replaced.items()}
    return dataclasses.replace(new, **changes), covered  # type: ignore[arg-type]


def _claims(port: Port) -> list[tuple[str, tuple[str, str]]]:
    """What a port must hold alone: its MAC and each address on its network, its tap."""
    claims = [("mac_address", (port.network_id, port.mac_address))]
    claims += [
        (f"fixed_ips[{i}].ip_address", (port.network_id, str(f.ip_address)))
        for i, f in enumerate(port.fixed_ips)
    ]
    if port.host:
        claims.append(("id", (port.host, port.device_name)))
    return claims


def keep_unique(
    state: DesiredState, previous: DesiredState | None
) -> tuple[DesiredState, tuple[ModelError, ...]]:
    """Make MACs and addresses unique per network, and taps per host, over the final set.

    Runs after :func:`merge_last_good`, which may put back a port's previous version next
    to a new port claiming the same address. A claim belongs to the port that held it in
    ``previous`` (the last delivered state) when that port still makes it; otherwise to the
    first port in file order. A port losing a claim is left out (its previous version is
    put back when none of that version's claims is taken), whatever the order in the file.

    :returns: the state without the losers, and one error per loser.
    """
    held: dict[tuple[str, str], str] = {}
    for port in previous.ports.values() if previous is not None else ():
        held.update((claim, port.id) for _, claim in _claims(port))

    wanted = {p.id: {c for _, c in _claims(p)} for p in state.ports.values()}

    def holder(claim: tuple[str, str]) -> str | None:
        owner = held.get(claim)
        return owner if owner is not None and claim in wanted.get(owner, ()) else None

    taken: dict[tuple[str, str], str] = {}
    kept: dict[str, Port] = {}
    losers: list[tuple[Port, str, str]] = []
    for port in state.ports.values():
        clash = next(
            (
                (field, other)
                for field, claim in _claims(port)
                if (other := holder(claim) or taken.get(claim, port.id)) != port.id
            ),
            None,
        )
        if clash is None:
            kept[port.id] = port
            taken.update((claim, port.id) for _, claim in _claims(port))
            continue
        losers.append((port, *clash))
    if not losers:
        return state, ()
    errors: list[ModelError] = []
    for port, field, other in losers:
        old = previous.ports.get(port.id) if previous is not None else None
        reason = f"already used by port {other}"
        if old is not None and old != port and all(c not in taken for _, c in _claims(old)):
            kept[port.id] = old
            taken.update((claim, old.id) for _, claim in _claims(old))
            reason += " (keeping the previous version)"
        errors.append(ModelError("port", port.id, field, reason))
    return dataclasses.replace(state, ports=frozen_map(kept)), tuple(errors)


class FileSource:
    """Feeds the agent core from a state file (implements
    :class:`netagent.agent.source.Source`).

    :param path: the state file.
    :param poll_interval: seconds between change checks.
    :param clock: monotonic clock of the read retries, replaceable in tests.
    """

    def __init__(
        self, path: str, poll_interval: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.poll_interval = poll_interval
        self._callback: UpdateCallback | None = None
        self._signature: Signature | None = None
        self._bad_signature: Signature | None = None
        self._good: DesiredState | None = None
        self._logged: set[tuple[str, str | None, str, str]] = set()
        self._file_error: str | None = None
        self._read_retry: Backoff[str] = Backoff(initial=1.0, maximum=60.0, clock=clock)
        self._lines: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._reread = threading.Event()
        self._reread_reason = ""
        self._thread: threading.Thread | None = None

    def reread(self, reason: str) -> None:
        """Read the file at the next check even if its signature is unchanged."""
        self._reread_reason = reason
        self._reread.set()

    def start(self, callback: UpdateCallback) -> None:
        """Load the file and keep watching it from a thread of its own."""
        self._callback = callback
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="file-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:
                LOG.exception("Unexpected error while reading %s", self.path)
            self._stop.wait(self.poll_interval)

    def check(self) -> bool:
        """Re-read the file if it changed since the last good read and deliver it.

        :returns: whether a snapshot was delivered.
        """
        before = _signature(self.path)
        retry = "read" in self._read_retry.due()
        if self._reread.is_set():
            self._reread.clear()
            LOG.info("Reading %s again (%s)", self.path, self._reread_reason)
            retry = True
        if before is not None and before in (self._signature, self._bad_signature) and not retry:
            return False
        try:
            result = statefile.load_state(self.path)
        except statefile.ChangedWhileReadError:
            LOG.debug("%s changed while being read; reading it again", self.path)
            return False
        except statefile.StateFileError as exc:
            self._file_failed(str(exc))
            self._bad_signature = before
            if isinstance(exc.__cause__, OSError) and before is not None:
                self._read_retry.failed("read", str(exc))
            else:
                self._read_retry.succeeded("read")
            return False
        self._read_retry.succeeded("read")
        # the version read, which a rename may have replaced since: then the next poll
        # sees another signature and reads the newer one
        self._signature = result.signature
        if self._file_error is not None:
            LOG.info("State file %s is usable again", self.path)
            self._file_error = None
        state, covered = merge_last_good(result.state, result.errors, self._good)
        state, clashes = keep_unique(state, self._good)
        errors = result.errors + clashes
        self._log_errors(errors, covered)
        self._good = state
        self._lines = lines = tuple(
            f"{e} (keeping the previous version)" if _error_key(e) in covered else str(e)
            for e in errors
        )
        if self._callback is not None:
            self._callback(SourceUpdate(state, lines, self.path))
        return True

    def _file_failed(self, reason: str) -> None:
        if reason != self._file_error:
            kept = "keeping the last good state" if self._good else "waiting for a usable file"
            LOG.error("State file unusable, %s: %s", kept, reason)
            self._file_error = reason
            if self._good is not None and self._callback is not None:
                # the same state, so the agent changes nothing but stops saying converged
                self._callback(SourceUpdate(self._good, self._lines, self.path, reason))

    def _log_errors(
        self,
        errors: tuple[ModelError, ...],
        covered: Mapping[tuple[str, str | None, str, str], str],
    ) -> None:
        current = {_error_key(e) for e in errors}
        for error in errors:
            key = _error_key(error)
            if key in self._logged:
                continue
            if key in covered:
                LOG.warning(
                    "Invalid object, keeping the previous version of %s: %s", covered[key], error
                )
            else:
                LOG.warning("Skipping invalid object: %s", error)
        for key in self._logged - current:
            LOG.info("%s %s is valid again (or gone)", key[0], key[1] or "")
        self._logged = current

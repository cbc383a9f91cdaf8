"""The agent lock: ``<state_path>/agent.lock``, held exclusively for the agent's life.

An ``flock`` dies with its process (crash or ``kill -9`` included), so a held lock means a
live holder, never a stale file. ``netagent-cleanup`` takes the same lock: it knows for
certain that no agent runs, and no agent can start while it removes things. The holder's
PID is written into the file for the error message only; the lock itself is the truth.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from types import TracebackType

from netagent.common.exceptions import NetagentError

LOCK_NAME = "agent.lock"
_MAX_READ = 64


class AgentLockHeldError(NetagentError):
    """Another process holds the agent lock of this ``state_path``."""

    def __init__(self, path: str, holder_pid: int | None) -> None:
        self.path = path
        self.holder_pid = holder_pid
        who = f"PID {holder_pid}" if holder_pid is not None else "a process (PID not yet written)"
        super().__init__(f"{path} is held by {who}: a netagent agent or cleanup is running")


def lock_path(state_path: str) -> str:
    return os.path.join(state_path, LOCK_NAME)


def _give_to_state_path_owner(fd: int, state_path: str) -> None:
    """Root's lock file (netagent-cleanup runs as root) goes to the owner of state_path:
    left root's 0600 file, it would keep the agent, which runs as user netagent, from
    opening it ever again."""
    if os.geteuid() != 0:
        return
    owner = os.stat(state_path)
    if os.fstat(fd).st_uid != owner.st_uid:
        os.fchown(fd, owner.st_uid, owner.st_gid)


class AgentLock:
    """Exclusive, non-blocking lock of one ``state_path``; a context manager.

    :param state_path: the agent's state directory (created if missing).
    """

    def __init__(self, state_path: str) -> None:
        self.path = lock_path(state_path)
        self._state_path = state_path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write this process's PID into the file.

        :raises AgentLockHeldError: another process holds it (its PID in the message).
        :raises OSError: the file cannot be created or opened.
        """
        if self._fd is not None:
            return
        os.makedirs(self._state_path, mode=0o700, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.path, flags, 0o600)
        # a file left by an older version was 0644; another user's file stays as it is
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o600)
        _give_to_state_path_owner(fd, self._state_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise AgentLockHeldError(self.path, holder) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Release the lock (idempotent). The file stays: removing it would race a
        process that has opened it but not yet locked it."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> AgentLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def holder(state_path: str) -> int | None:
    """Whether the lock is held, without creating anything: the holder's PID, 0 when the
    holder has not written it yet, ``None`` when it is free or the file does not exist.

    The probe locks for an instant; an agent starting in that instant refuses to start.
    """
    try:
        fd = os.open(lock_path(state_path), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            return 0 if pid is None else pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    # The file's content is whatever is on disk: parse it strictly, never trust it further.
    try:
        text = os.pread(fd, _MAX_READ, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and 0 < len(text) <= 10 else None

"""Executing lists of netlink operations in one namespace, pipelined.

Operations are the typed, already validated objects of :mod:`netagent.privileged.ops`.
Requests are queued and sent together; the queue is flushed early only when an operation
needs the ifindex of a device that is not known yet (e.g. an address on a veth created
earlier in the same batch), which costs one extra RTM_GETLINK round trip.
Every operation gets its own outcome; a failed one does not stop the others.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence

from netagent.common.exceptions import NetagentError
from netagent.privileged import linkdecode, nlbuild
from netagent.privileged import validate as v
from netagent.privileged.errors import InvalidArgument, KernelError, translate
from netagent.privileged.nlsocket import Request, get_socket
from netagent.privileged.ops import Op

LOG = logging.getLogger(__name__)

#: ``(index in the batch, errno, kind, operation, target, kernel message)``
Failure = tuple[int, int, str, str, str, str]


class BatchError(NetagentError):
    """Some operations of a batch failed; the others were applied.

    :param namespace: where the batch ran.
    :param failures: one :data:`Failure` tuple per failed operation.
    """

    def __init__(self, namespace: str | None, failures: list[Failure]) -> None:
        super().__init__(namespace, failures)
        self.namespace = namespace
        self.failures = failures

    def errors(self) -> list[tuple[int, KernelError]]:
        """The failures as ``(index, typed exception)`` pairs."""
        return [
            (index, translate(err, kind, op, target, self.namespace))
            for index, err, kind, op, target, _msg in self.failures
        ]

    def __str__(self) -> str:
        parts = [
            f"#{index} {exc}" + (f" ({msg})" if msg else "")
            for (index, exc), (*_x, msg) in zip(self.errors(), self.failures, strict=True)
        ]
        return f"{len(self.failures)} operation(s) failed: " + "; ".join(parts)


class _Runner:
    def __init__(self, namespace: str | None) -> None:
        self.namespace = namespace
        self.sock = get_socket(namespace)
        self.indexes: dict[str, int] = {}
        self.queue: list[tuple[int, str, str, str, Request]] = []
        # namespace fds referenced by queued requests; closed once those are sent
        self.queue_fds: list[int] = []
        self.failures: list[Failure] = []
        self.ctx = nlbuild.Context(self.resolve)

    def resolve(self, name: str) -> int:
        index = self.indexes.get(name)
        if index is not None:
            return index
        self.flush()
        reply = self.sock.run([nlbuild.get_link(name)])[0]
        if reply.error or not reply.messages:
            raise _UnresolvedError(name, reply.error or errno.ENODEV)
        index = linkdecode.header(reply.messages[0].data)[1]
        self.indexes[name] = index
        return index

    def flush(self) -> None:
        if not self.queue:
            return
        queue, self.queue = self.queue, []
        fds, self.queue_fds = self.queue_fds, []
        try:
            replies = self.sock.run([item[4] for item in queue])
        finally:
            for fd in fds:
                os.close(fd)
        for (index, kind, opname, target, _req), reply in zip(queue, replies, strict=True):
            if reply.error:
                self.failures.append((index, reply.error, kind, opname, target, reply.message))
                LOG.debug("%s %s failed: %s", opname, target, reply.error)
            else:
                LOG.info("%s %s (namespace %s)", opname, target, self.namespace)

    def add(self, index: int, op: Op) -> None:
        try:
            built = op.build(self.ctx)
        except _UnresolvedError as exc:
            self.ctx.close()
            self.failures.append((index, exc.err, "link", op.opname, exc.name, "lookup failed"))
            return
        except KernelError as exc:  # e.g. the peer namespace of a veth is missing
            self.ctx.close()
            self.failures.append((index, exc.errno, op.kind, op.opname, op.target, str(exc)))
            return
        # fds opened while building belong to this op (a flush inside the builder must
        # not close them: the kernel reads IFLA_NET_NS_FD when the request is sent)
        self.queue_fds.extend(self.ctx.fds)
        self.ctx.fds.clear()
        if op.invalidates:
            self.indexes.pop(op.target, None)
            self.indexes.pop(getattr(op, "name", op.target), None)  # a renamed device
        for kind, target, request in built:
            self.queue.append((index, kind, op.opname, target, request))


class _UnresolvedError(Exception):
    def __init__(self, name: str, err: int) -> None:
        super().__init__(name, err)
        self.name = name
        self.err = err


def execute(namespace: str | None, ops: Sequence[Op]) -> None:
    """Apply ``ops`` in order in ``namespace``, pipelined over its cached netlink socket.

    :param namespace: namespace name, ``None`` for the agent's own.
    :param ops: operations (validated when they were made).
    :raises InvalidArgument: an element is not an operation; nothing was sent.
    :raises NamespaceNotFound: the namespace does not exist.
    :raises BatchError: at least one operation failed in the kernel (the others were
        applied).
    """
    v.optional_namespace(namespace)
    for op in ops:
        if not isinstance(op, Op):
            raise InvalidArgument("op", op, "an operation of netagent.privileged.ops expected")
    runner = _Runner(namespace)
    try:
        for index, op in enumerate(ops):
            runner.add(index, op)
        runner.flush()
    finally:
        runner.ctx.close()
        for fd in runner.queue_fds:
            os.close(fd)
    if runner.failures:
        raise BatchError(namespace, sorted(runner.failures))


def execute_one(namespace: str | None, op: Op) -> None:
    """Apply one operation and raise its typed error.

    :raises KernelError: (or a subclass) the kernel refused the operation.
    """
    try:
        execute(namespace, [op])
    except BatchError as exc:
        raise exc.errors()[0][1] from None

"""The one error the model raises."""

from __future__ import annotations

from netagent.common.exceptions import NetagentError


class ModelError(NetagentError):
    """An object failed validation.

    Every parser in :mod:`netagent.model` raises this and nothing else, whatever the input.

    :param kind: the object kind, e.g. ``"port"`` or ``"security_group_rule"``.
    :param object_id: the object's id when it could be read, else ``None``.
    :param field: dotted path of the bad field inside the object, e.g.
        ``"fixed_ips[1].ip_address"``; ``"<object>"`` when the object itself is wrong.
    :param reason: what is wrong, with a safe, shortened rendering of the bad value.
    :param location: where the object came from (e.g. ``"state.yaml ports[3]"``), if known.
    """

    def __init__(
        self,
        kind: str,
        object_id: str | None,
        field: str,
        reason: str,
        location: str | None = None,
    ) -> None:
        super().__init__(kind, object_id, field, reason, location)
        self.kind = kind
        self.object_id = object_id
        self.field = field
        self.reason = reason
        self.location = location

    def __str__(self) -> str:
        who = f"{self.kind} {self.object_id}" if self.object_id else self.kind
        text = f"{who}: field {self.field}: {self.reason}"
        return f"{self.location}: {text}" if self.location else text

    def with_location(self, location: str) -> ModelError:
        """Return a copy of this error that also names where the object came from.

        :param location: e.g. ``"/etc/netagent/state.yaml ports[3]"``.
        :returns: a new :class:`ModelError`.
        """
        return ModelError(self.kind, self.object_id, self.field, self.reason, location)

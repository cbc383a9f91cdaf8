"""Agents: which host runs netagent and its VXLAN underlay address."""

from __future__ import annotations

import dataclasses

from netagent.common import constants
from netagent.model import validate as v
from netagent.model.validate import IPAddress, Reader


@dataclasses.dataclass(frozen=True, slots=True)
class Agent:
    """An agent entry of the state file (Neutron's agent API shape, trimmed).

    :ivar host: the agent's ``[DEFAULT] host``.
    :ivar tunneling_ip: ``configurations.tunneling_ip``, the VXLAN underlay address;
        ``None`` when the host has no tunnel endpoint.
    :ivar agent_type: words of ``[A-Za-z0-9_.-]`` separated by single spaces
        (e.g. ``"Netagent agent"``); the one model string that may hold a space.
    """

    host: str
    tunneling_ip: IPAddress | None = None
    agent_type: str = constants.AGENT_TYPE

    @classmethod
    def from_api(cls, data: object) -> Agent:
        """Parse ``{"host": ..., "agent_type": ..., "configurations": {"tunneling_ip": ...}}``.

        :raises ModelError: on any invalid field (agents are identified by host, so the
            error's ``object_id`` is the host once it is valid).
        """
        r = Reader(data, "agent")
        host = r.req("host", v.hostname)
        r.object_id = host
        config = r.opt_child("configurations")
        return cls(
            host=host,
            tunneling_ip=config.opt("tunneling_ip", v.ip_address, None) if config else None,
            agent_type=r.opt("agent_type", v.label, constants.AGENT_TYPE),
        )

"""The typed model: validated, immutable objects parsed from Neutron-shaped dicts.

Parsing is the one gate for untrusted input. Every ``from_*`` constructor raises
:class:`ModelError` (and nothing else) for any bad input, naming the object and the field.
Standard library only.
"""

from __future__ import annotations

from netagent.model.agent import Agent
from netagent.model.errors import ModelError
from netagent.model.network import Network, NetworkType, Subnet
from netagent.model.port import AllowedAddressPair, DeviceDetails, FixedIP, Port
from netagent.model.router import FloatingIP, Route, Router, RouterPort
from netagent.model.secgroup import (
    AddressGroup,
    Direction,
    EtherType,
    SecurityGroup,
    SecurityGroupRule,
)
from netagent.model.sginfo import MemberAddress, SecurityGroupInfo
from netagent.model.state import DesiredState, HostView
from netagent.model.validate import IPAddress, IPNetwork

__all__ = [
    "AddressGroup",
    "Agent",
    "AllowedAddressPair",
    "DesiredState",
    "DeviceDetails",
    "Direction",
    "EtherType",
    "FixedIP",
    "FloatingIP",
    "HostView",
    "IPAddress",
    "IPNetwork",
    "MemberAddress",
    "ModelError",
    "Network",
    "NetworkType",
    "Port",
    "Route",
    "Router",
    "RouterPort",
    "SecurityGroup",
    "SecurityGroupInfo",
    "SecurityGroupRule",
    "Subnet",
]

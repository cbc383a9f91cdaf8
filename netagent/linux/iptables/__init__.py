"""iptables for netagent: typed rules, restore-input rendering and the chain manager.

Public API::

    from netagent.linux.iptables import IptablesManager, Rule, Proto, DPortRange, ...
    mgr = IptablesManager("qrouter-...", backend="auto")
    mgr.set_chain(4, "filter", "na-i-3f1c2a8e5d0", [Rule((Proto(6), DPortRange(22, 22)), ACCEPT)])
    mgr.set_jumps(4, "filter", "FORWARD", [Rule((Physdev(out="tap3f1c2a8e5d0", is_bridged=True),),
                                               Jump("na-i-3f1c2a8e5d0"))])
    result = mgr.apply()   # ApplyResult(applied=..., failed=...)
"""

from __future__ import annotations

from netagent.linux.iptables.manager import ApplyResult, ChainKey, IptablesManager
from netagent.linux.iptables.plan import hook_chain
from netagent.linux.iptables.rules import (
    ACCEPT,
    DNAT,
    DROP,
    RETURN,
    SNAT,
    U32,
    Conntrack,
    CTZone,
    DPortRange,
    DstNet,
    Icmp,
    InIface,
    Jump,
    MacSource,
    MarkMatch,
    Match,
    NoTrack,
    OutIface,
    Physdev,
    Proto,
    Reject,
    Rule,
    SetMark,
    SetMatch,
    SPortRange,
    SrcNet,
    Target,
)

__all__ = [
    "ACCEPT",
    "DNAT",
    "DROP",
    "RETURN",
    "SNAT",
    "U32",
    "ApplyResult",
    "CTZone",
    "ChainKey",
    "Conntrack",
    "DPortRange",
    "DstNet",
    "Icmp",
    "InIface",
    "IptablesManager",
    "Jump",
    "MacSource",
    "MarkMatch",
    "Match",
    "NoTrack",
    "OutIface",
    "Physdev",
    "Proto",
    "Reject",
    "Rule",
    "SPortRange",
    "SetMark",
    "SetMatch",
    "SrcNet",
    "Target",
    "hook_chain",
]

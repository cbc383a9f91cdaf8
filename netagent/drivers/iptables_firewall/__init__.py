"""The iptables firewall driver: security groups, ipsets and ebtables anti-spoofing."""

from __future__ import annotations

from netagent.drivers.iptables_firewall.driver import IptablesFirewallDriver

__all__ = ["IptablesFirewallDriver"]

"""Preflight: does this host have what the configured drivers and source need?

One check per kernel feature, tool or resource, chosen from the configuration, each
answered by reading (never changing) the host: ``netagent-check`` prints them, and the
agent runs the same checks before it touches anything and refuses to start when a
required one fails. The broker check is advisory at agent start (the agent waits for a
broker that is down, as Neutron's agents do) and required in ``netagent-check``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Iterator

from oslo_config import cfg

from netagent.common.exceptions import NetagentError, PreflightError
from netagent.linux import preflight as kernel


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """One check's outcome.

    :ivar required: a failure stops the agent (advisory checks only warn).
    """

    name: str
    ok: bool
    detail: str
    required: bool = True

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def line(self) -> str:
        mark = "OK  " if self.ok else ("FAIL" if self.required else "WARN")
        return f"{mark} {self.name}: {self.detail}"


Check = Callable[[cfg.ConfigOpts], str]


def _kernel(probe: Callable[[], str]) -> Check:
    return lambda conf: probe()


def check_state_path(conf: cfg.ConfigOpts) -> str:
    path = conf.state_path
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".preflight-"):
            pass
    except OSError as exc:
        raise PreflightError(f"{path} is not writable: {exc.strerror}") from None
    return f"{path} writable"


def check_ovs_firewall(conf: cfg.ConfigOpts) -> str:
    """A tap plugged straight into OVS is invisible to iptables (no Linux bridge, so no
    physdev match). The iptables driver filters Open vSwitch ports through the hybrid
    plug (os-vif's ``qbr`` bridge, asked for by the binding); any other filtering
    firewall would only pretend to filter, so it is refused rather than run ports
    unfiltered behind a security group. (br_netfilter is checked with iptables.)"""
    driver = conf.agent.firewall_driver
    if driver == "iptables":
        return "iptables on the hybrid plug (qbr bridges, ovs_hybrid_plug in vif_details)"
    if driver != "noop":
        raise PreflightError(
            f"firewall_driver {driver} cannot filter ports on Open vSwitch; "
            "use firewall_driver = iptables (hybrid plug) or noop"
        )
    return "no firewall driver (ports are not filtered)"


def selected(
    conf: cfg.ConfigOpts, broker: Check | None, *, at_start: bool
) -> Iterator[tuple[str, Check, bool]]:
    """(name, check, required) for what this configuration needs.

    :param broker: the broker check of the RPC layer, for ``source = neutron``.
    """
    yield "network namespaces", _kernel(kernel.check_namespaces), True
    yield "state_path", check_state_path, True
    if conf.agent.l2_driver == "linuxbridge":
        yield "bridge", _kernel(kernel.check_bridge), True
        if conf.linuxbridge.local_ip:
            yield "vxlan", _kernel(kernel.check_vxlan), True
    if conf.agent.l2_driver == "openvswitch":
        yield "firewall on Open vSwitch", check_ovs_firewall, True
    if conf.agent.firewall_driver == "iptables":
        yield "br_netfilter", _kernel(kernel.check_br_netfilter), True
        yield (
            "iptables",
            lambda conf: kernel.check_iptables(conf.iptables.backend, conf.state_path),
            True,
        )
        yield "ebtables", _kernel(kernel.check_ebtables), True
        yield "ipset", _kernel(kernel.check_ipset), True
        yield "conntrack", _kernel(kernel.check_conntrack), True
    if conf.agent.l3_driver != "noop":
        yield "policy routing", _kernel(kernel.check_policy_routing), True
    if conf.agent.source == "neutron" and broker is not None:
        yield "broker", broker, not at_start


def run(
    conf: cfg.ConfigOpts, broker: Check | None = None, *, at_start: bool = False
) -> list[Result]:
    """Run every check this configuration needs, in order; none raises.

    :param broker: checks the broker (``transport.check_broker``); layers below the
        agent may not import the RPC layer, so the command passes it in.
    """
    results = []
    for name, check, required in selected(conf, broker, at_start=at_start):
        try:
            results.append(Result(name, True, check(conf), required))
        except PreflightError as exc:
            results.append(Result(name, False, str(exc), required))
        except (NetagentError, OSError) as exc:  # a probe's own failure is a failed check
            results.append(Result(name, False, f"{type(exc).__name__}: {exc}", required))
    return results

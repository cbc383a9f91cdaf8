"""``[iptables] backend = auto`` never moves a restarted agent to the other backend.

The agent starts on a host namespace, picks a backend and filters; then someone runs a
legacy iptables tool in the namespace (which creates the legacy tables, empty) and adds a
rule of their own there, and the agent is SIGKILLed and started again. It keeps the
backend its chains are in, says why in its log, writes nothing to the other backend, and
the group still blocks what it blocked (a UDP datagram to a closed port, counted on
arrival) while letting through what it admits.
"""

from __future__ import annotations

import signal

from tests.fullstack import harness
from tests.fullstack.harness import wait_for
from tests.fullstack.test_integrity import (
    CLOSED_UDP_PORT,
    GroupFabric,
    _hexec,
    _probe,
    _setup,
    grouped,  # noqa: F401 - fixture
)


def _chains(host: harness.Host, backend: str) -> set[str]:
    found = set()
    for tool in (f"iptables-{backend}-save", f"ip6tables-{backend}-save"):
        out = harness.run("ip", "netns", "exec", host.netns, tool, check=False).stdout
        found |= {line.split()[0][1:] for line in out.splitlines() if line.startswith(":na-")}
    return found


def test_restart_after_a_legacy_tool_ran_keeps_nft(grouped: GroupFabric) -> None:  # noqa: F811
    host, vm1, vm2 = _setup(grouped, "auto")
    frames = [(vm1.address, str(CLOSED_UDP_PORT), "closed00"), (vm1.address, "icmp", "genuine0")]
    assert _probe(vm1, vm2, frames) == {"genuine0"}
    first = host.log_file.read_text(errors="replace")
    assert "iptables backend nft (auto)" in first, host.log_tail()
    nft_chains = _chains(host, "nft")
    assert "na-FORWARD" in nft_chains
    assert (host.state_path / "iptables-backend").read_text() == "nft\n"
    # an admin's legacy tool runs in the namespace, and leaves a rule of its own
    _hexec(host, "iptables-legacy", "-L", "-n")
    _hexec(host, "iptables-legacy", "-A", "INPUT", "-s", "203.0.113.7", "-j", "DROP")
    host.stop_agent(signal.SIGKILL)
    host.log_file.write_text("")
    host.start_agent()
    wait_for("agent converged again", lambda: host.status().returncode == 0, timeout=30)
    log = host.log_file.read_text(errors="replace")
    assert "iptables backend nft (auto): netagent's chains are in the nft tables" in log, log
    assert _chains(host, "legacy") == set()
    assert _chains(host, "nft") == nft_chains
    assert _probe(vm1, vm2, frames) == {"genuine0"}

"""``netagent-check`` and the agent's start-up checks, on the real host (read-only).

Failures are caused for real: a ``state_path`` that cannot be created, and the kernel's
answer to a process without CAP_NET_ADMIN (ipset, ctnetlink).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _config(tmp_path: Path, state_path: Path, source: str = "file") -> Path:
    conf = tmp_path / "netagent.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {state_path}\nlog_file = {tmp_path / 'agent.log'}\n"
        f"transport_url = rabbit://guest:guest@127.0.0.1:1/\n"
        f"[agent]\nsource = {source}\nl2_driver = linuxbridge\nfirewall_driver = iptables\n"
        f"[file_source]\npath = {tmp_path / 'state.yaml'}\n"
        "[linuxbridge]\nlocal_ip = 198.18.0.1\n"
    )
    return conf


def _check(conf: Path, *prefix: str) -> tuple[int, list[dict[str, object]]]:
    proc = subprocess.run(
        [*prefix, str(BIN / "netagent-check"), "--config-file", str(conf), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.returncode, json.loads(proc.stdout)


def test_all_checks_pass_on_this_host(tmp_path: Path) -> None:
    code, results = _check(_config(tmp_path, tmp_path / "state"))
    assert code == 0, results
    assert [r["name"] for r in results] == [
        "network namespaces",
        "state_path",
        "bridge",
        "vxlan",
        "br_netfilter",
        "iptables",
        "ebtables",
        "ipset",
        "conntrack",
    ]
    assert all(r["ok"] for r in results)


def test_broker_that_does_not_answer_fails_the_check(tmp_path: Path) -> None:
    code, results = _check(_config(tmp_path, tmp_path / "state", source="neutron"))
    assert code == 1
    broker = results[-1]
    assert broker["name"] == "broker" and broker["ok"] is False
    assert "127.0.0.1:1 does not answer" in str(broker["detail"])


def test_without_cap_net_admin_the_kernel_checks_fail(tmp_path: Path) -> None:
    conf = _config(tmp_path, tmp_path / "state")
    code, results = _check(conf, "setpriv", "--bounding-set=-net_admin", "--inh-caps=-all", "--")
    failed = {str(r["name"]) for r in results if not r["ok"]}
    assert code == 1
    assert {"ipset", "conntrack"} <= failed, results


def test_agent_refuses_to_start_when_a_check_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    conf = _config(tmp_path, blocker / "state")  # cannot be created under a file
    proc = subprocess.run(
        [str(BIN / "netagent-agent"), "--config-file", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "preflight FAIL state_path" in proc.stderr
    assert "not starting" in (tmp_path / "agent.log").read_text()


def test_openvswitch_takes_iptables_hybrid_and_refuses_a_firewall_it_cannot_apply(
    tmp_path: Path,
) -> None:
    conf = _config(tmp_path, tmp_path / "state")
    text = conf.read_text().replace("l2_driver = linuxbridge", "l2_driver = openvswitch")
    conf.write_text(text)
    code, results = _check(conf)
    by_name = {r["name"]: r for r in results}
    assert "ovs-ofctl" not in by_name  # flows go over the bridges' sockets, no fork
    assert by_name["firewall on Open vSwitch"]["ok"] is True, results
    assert "hybrid plug" in by_name["firewall on Open vSwitch"]["detail"]
    assert by_name["br_netfilter"]["ok"] is True  # checked as on Linux bridge
    assert code == 0, results
    conf.write_text(text.replace("firewall_driver = iptables", "firewall_driver = noop"))
    code, results = _check(conf)
    assert code == 0, results
    # a filtering firewall that cannot see OVS ports is refused
    conf.write_text(text.replace("firewall_driver = iptables", "firewall_driver = other"))
    code, results = _check(conf)
    assert code != 0
    by_name = {r["name"]: r for r in results}
    assert by_name["firewall on Open vSwitch"]["ok"] is False

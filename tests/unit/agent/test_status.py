"""Status socket, the netagent-status tool, and netagent-cleanup."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from netagent.agent import status
from netagent.agent.core import Reconciler
from netagent.agent.lock import AgentLock
from netagent.agent.source import SourceUpdate
from netagent.cmd import cleanup as cleanup_cmd
from netagent.cmd import status as status_cmd
from netagent.model.secgroup import SecurityGroup
from tests.unit.agent import fakes
from tests.unit.agent.fakes import HOST, Clock, World, network, port, state

NET1 = network(1)
P1 = port(1, NET1)
P2 = port(2, NET1)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Reconciler, World, str]]:
    world = World()
    rec = Reconciler(HOST, *fakes.drivers(world), clock=Clock(), settle=0.0)
    rec.set_devices({P1.device_name: 7})
    rec.on_update(SourceUpdate(state([NET1], [P1, P2]), ("bad port x",), "state.yaml"))
    rec.step(timeout=0)
    server = status.StatusServer(status.socket_path(str(tmp_path)), rec.status)
    server.start()
    yield rec, world, str(tmp_path)
    server.stop()


def test_status_document_over_the_socket(agent: tuple[Reconciler, World, str]) -> None:
    _rec, _world, state_path = agent
    doc = status.query(status.socket_path(state_path))
    assert doc["converged"] is True and doc["host"] == HOST
    ports = {p["id"]: p for p in doc["ports"]}
    assert ports[P1.id]["wired"] and ports[P1.id]["filtered"] and ports[P1.id]["converged"]
    assert ports[P1.id]["device"] == P1.device_name
    assert ports[P2.id]["waiting_for_device"] and not ports[P2.id]["wired"]
    assert doc["networks"][0]["devices"] == [P1.device_name]
    assert doc["networks"][0]["ready"] is True
    assert doc["source_errors"] == ["bad port x"]
    assert doc["counters"]["full_syncs"] == 1


def test_second_server_on_the_same_path_is_refused(
    agent: tuple[Reconciler, World, str],
) -> None:
    _rec, _world, state_path = agent
    with pytest.raises(Exception, match="another agent"):
        status.StatusServer(status.socket_path(state_path), dict).start()


def test_status_tool_table_json_and_check(
    agent: tuple[Reconciler, World, str], capsys: pytest.CaptureFixture[str]
) -> None:
    rec, world, state_path = agent
    assert status_cmd.main(["--state-path", state_path, "--check"]) == 0
    out = capsys.readouterr().out
    assert P1.id in out and "waiting for device" in out and "converged: yes" in out
    assert status_cmd.main(["--state-path", state_path, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["converged"] is True
    assert status_cmd.main(["--state-path", state_path, "--id", P2.id[:8]]) == 0
    out = capsys.readouterr().out
    assert P2.id in out and P1.id not in out
    # a failure: --check fails until the port converges
    world.fail[f"apply_ports:{P2.id}"] = "boom"
    rec.on_device(P2.device_name, 8)
    rec.step(timeout=0)
    assert status_cmd.main(["--state-path", state_path, "--check"]) == 1
    assert "boom" in capsys.readouterr().out


def test_status_tool_without_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert status_cmd.main(["--state-path", str(tmp_path), "--check"]) == 3
    assert "not running" in capsys.readouterr().err
    conf = tmp_path / "netagent.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp_path}/sub\n")
    assert status_cmd.main(["--config-file", str(conf)]) == 3
    assert f"{tmp_path}/sub/status.sock" in capsys.readouterr().err


def test_cleanup_dry_run_with_noop_drivers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "netagent.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n")
    assert cleanup_cmd.main(["--config-file", str(conf), "--dry-run"]) == 0
    assert cleanup_cmd.main(["--config-file", str(conf)]) == 0


def test_cleanup_refuses_while_the_agent_lock_is_held(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The lock decides, not the status socket (there is none here).
    conf = tmp_path / "netagent.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n")
    with AgentLock(str(tmp_path)):
        assert cleanup_cmd.main(["--config-file", str(conf)]) == 1
        err = capsys.readouterr().err
        assert "agent is running" in err and f"PID {os.getpid()}" in err
        assert cleanup_cmd.main(["--config-file", str(conf), "--dry-run"]) == 0
        assert "agent is running" in capsys.readouterr().err
        assert cleanup_cmd.main(["--config-file", str(conf), "--force"]) == 0
        assert "--force" in capsys.readouterr().err
    assert cleanup_cmd.main(["--config-file", str(conf)]) == 0
    # Cleanup released its own hold: an agent can start now.
    with AgentLock(str(tmp_path)):
        pass


def test_rules_with_protocol_zero_show_as_any_protocol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = SecurityGroup.from_api(
        {
            "id": fakes.uid(9, 3),
            "security_group_rules": [
                {"direction": "ingress", "ethertype": "IPv6", "protocol": 0},
                {"direction": "ingress", "ethertype": "IPv4", "protocol": "hopopt"},
                {"direction": "egress", "ethertype": "IPv4", "protocol": "tcp"},
            ],
        }
    )
    secured = port(3, NET1, security_groups=(group.id,))
    rec = Reconciler(HOST, *fakes.drivers(World()), clock=Clock(), settle=0.0)
    rec.set_devices({secured.device_name: 9})
    rec.on_update(SourceUpdate(state([NET1], [secured], security_groups=[group]), (), "f"))
    rec.step(timeout=0)
    doc = rec.status()
    assert doc["security_groups"] == [
        {
            "id": group.id,
            "stateful": True,
            "rules": [
                "ingress IPv6 any protocol from anywhere",
                "ingress IPv4 any protocol from anywhere",
                "egress IPv4 tcp to anywhere",
            ],
        }
    ]
    out = status_cmd.render(dict(doc))
    assert f"security group {group.id} (stateful)" in out
    assert "  ingress IPv6 any protocol from anywhere" in out


def test_refused_file_and_port_errors_are_not_converged(
    agent: tuple[Reconciler, World, str], capsys: pytest.CaptureFixture[str]
) -> None:
    rec, _world, state_path = agent
    kept = rec.status()
    assert kept["converged"] is True and kept["file_error"] is None
    good = rec._update
    assert good is not None
    # the newest file was refused as a whole: the last good state stays applied
    rec.on_update(SourceUpdate(good.state, good.errors, "state.yaml", "line 3: bad YAML"))
    doc = status.query(status.socket_path(state_path))
    assert doc["converged"] is False and doc["file_error"] == "line 3: bad YAML"
    assert status_cmd.main(["--state-path", state_path, "--check"]) == 1
    out = capsys.readouterr().out
    assert "converged: no" in out and "state file refused" in out and "line 3: bad YAML" in out
    rec.on_update(SourceUpdate(good.state, good.errors, "state.yaml"))
    assert status.query(status.socket_path(state_path))["converged"] is True
    # a port that cannot be planned (its network is not in the state) is an error
    orphan = port(3, network(2))
    rec.set_devices({P1.device_name: 7, orphan.device_name: 9})
    rec.on_update(SourceUpdate(state([NET1], [P1, P2, orphan]), (), "state.yaml"))
    for _ in range(5):
        rec.step(timeout=0)
    doc = status.query(status.socket_path(state_path))
    errors = {p["id"]: p["error"] for p in doc["ports"] if p["error"]}
    assert orphan.id in errors, doc["ports"]
    assert doc["converged"] is False
    assert status_cmd.main(["--state-path", state_path, "--check"]) == 1
    assert errors[orphan.id] in capsys.readouterr().out


def test_render_shows_integrity_counters_and_the_last_repair() -> None:
    doc = {
        "host": "h",
        "counters": {"integrity_checks": 40, "integrity_repairs": 2},
        "last_integrity_repair": {
            "at": 0.0,
            "found": ["network n1: bridge brqn1 deleted", "port p1: tapp1 taken out of brqn1"],
        },
    }
    out = status_cmd.render(doc)
    assert "integrity checks 40, repairs 2" in out
    assert "  network n1: bridge brqn1 deleted\n  port p1: tapp1 taken out of brqn1" in out
    assert "last repair" not in status_cmd.render({"host": "h", "counters": {}})

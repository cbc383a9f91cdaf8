"""The agent as a non-root user with only CAP_NET_ADMIN, CAP_NET_RAW and CAP_SYS_ADMIN.

The way the systemd unit runs it (``User=``, ``AmbientCapabilities=``, the same bounding
set): the agent wires and filters as it does as root, its status socket and state files
are not world-readable, and it holds no other capability. The whole Linux bridge and
security-group suites run this way with ``NETAGENT_FULLSTACK_AGENT_USER=nobody``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.fullstack import harness
from tests.fullstack.harness import Fabric
from tests.fullstack.test_integrity import CLOSED_UDP_PORT, GroupFabric, _probe, _setup

USER = harness.AGENT_USER or "nobody"
#: CAP_NET_ADMIN (12), CAP_NET_RAW (13), CAP_SYS_ADMIN (21)
CAPS = (1 << 12) | (1 << 13) | (1 << 21)


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


@pytest.mark.agent_user(USER)
@pytest.mark.parametrize("backend", ["nft", "legacy"])
def test_agent_runs_unprivileged_with_three_capabilities(fabric: Fabric, backend: str) -> None:
    fabric.__class__ = GroupFabric
    assert isinstance(fabric, GroupFabric)
    uid, _gid = harness.agent_ids(USER)
    host, vm1, vm2 = _setup(fabric, backend)
    assert host.process is not None
    status = _proc_status(host.process.pid)
    assert status["Uid"].split() == [str(uid)] * 4
    for kind in ("CapEff", "CapPrm", "CapAmb", "CapBnd"):
        assert int(status[kind], 16) == CAPS, f"{kind} {status[kind]}"
    # the filters work: a closed port stays closed, ICMP the group admits passes
    frames = [(vm1.address, str(CLOSED_UDP_PORT), "closed00"), (vm1.address, "icmp", "genuine0")]
    assert _probe(vm1, vm2, frames) == {"genuine0"}
    # nothing in state_path is readable by others; the status socket not even by them
    found = []
    for root, dirs, files in os.walk(host.state_path):
        for name in [*dirs, *files]:
            mode = os.lstat(os.path.join(root, name)).st_mode
            found.append(name)
            assert mode & 0o007 == 0, f"{name} is {stat.filemode(mode)}"
    assert os.stat(host.state_path).st_mode & 0o077 == 0
    assert "status.sock" in found
    print("state_path:", sorted(found))

"""The iptables manager against an in-memory fake of the privileged layer (no root)."""

from __future__ import annotations

import pytest

from netagent.linux.iptables import (
    ACCEPT,
    DROP,
    DPortRange,
    IptablesManager,
    Jump,
    Proto,
    Rule,
    SetMatch,
)
from netagent.linux.iptables import backend as backend_mod
from netagent.linux.iptables import manager as manager_mod
from netagent.privileged import iptables as real_priv


class FakeKernel:
    """Just enough of iptables-restore --noflush semantics; chains with 'bad' fail."""

    BACKENDS = real_priv.BACKENDS
    IptablesRestoreError = real_priv.IptablesRestoreError
    netns_prefix = staticmethod(real_priv.netns_prefix)

    def __init__(self) -> None:
        self.tables: dict[tuple[int, str], dict[str, list[str]]] = {}
        self.restores: list[str] = []
        self.settled: list[bool] = []
        self.saves = 0

    def legacy_tables(self, ns: str | None) -> dict[int, list[str]]:
        return {4: [], 6: []}

    def alternative(self) -> str:
        return "nft"

    def _table(self, family: int, table: str) -> dict[str, list[str]]:
        return self.tables.setdefault((family, table), {"INPUT": [], "FORWARD": []})

    def restore(
        self,
        ns: str | None,
        backend: str,
        family: int,
        table: str,
        text: str,
        *,
        settle: bool = True,
    ) -> None:
        real_priv.check_restore_input(table, text)
        chains = {k: list(x) for k, x in self._table(family, table).items()}
        for n, line in enumerate(text.splitlines(), 1):
            words = line.split()
            if "bad" in line:
                raise real_priv.IptablesRestoreError(
                    family, table, 1, f"Error occurred at line: {n}\n"
                )
            if line.startswith(":"):
                chains[words[0][1:]] = []
            elif words[0] == "-F":
                if words[1] not in chains:
                    raise real_priv.IptablesRestoreError(family, table, 1, f"line {n} failed")
                chains[words[1]] = []
            elif words[0] == "-A":
                chains[words[1]].append(line)
            elif words[0] == "-I":
                chains[words[1]].insert(0, f"-A {words[1]} " + " ".join(words[3:]))
            elif words[0] == "-D":
                chains[words[1]].remove(f"-A {words[1]} " + " ".join(words[2:]))
            elif words[0] == "-X":
                del chains[words[1]]
        self.tables[(family, table)] = chains
        self.restores.append(text)
        self.settled.append(settle)

    def save(self, ns: str | None, backend: str, family: int, table: str) -> str:
        self.saves += 1
        chains = self._table(family, table)
        out = [f"*{table}"] + [f":{c} - [0:0]" for c in chains]
        out += [line for rules in chains.values() for line in rules]
        return "\n".join([*out, "COMMIT"]) + "\n"


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    fake = FakeKernel()
    monkeypatch.setattr(manager_mod, "priv", fake)
    monkeypatch.setattr(backend_mod, "priv", fake)
    return fake


def drop_port(port: int) -> list[Rule]:
    return [Rule((Proto(6), DPortRange(port, port)), DROP), Rule((), ACCEPT)]


def test_only_changed_chains_are_written(kernel: FakeKernel) -> None:
    mgr = IptablesManager("ns1", verify_interval=None)
    for i in range(3):
        mgr.set_chain(4, "filter", f"na-{i}", drop_port(i))
    mgr.set_jumps(4, "filter", "FORWARD", [Rule((), Jump("na-0"))])
    assert mgr.apply().ok
    assert kernel.tables[(4, "filter")]["FORWARD"][0].endswith("-j na-FORWARD")
    mgr.set_chain(4, "filter", "na-1", drop_port(99))
    result = mgr.apply()
    assert list(result.applied.values()) == ["written"]
    assert kernel.restores[-1].count("\n") == 5  # *filter, -F, two rules, COMMIT
    assert mgr.apply().inputs == []


def test_damage_found_by_verify(kernel: FakeKernel) -> None:
    mgr = IptablesManager("ns1", verify_interval=None)
    mgr.set_chain(4, "filter", "na-a", drop_port(1))
    assert mgr.apply().ok
    kernel.tables[(4, "filter")]["na-a"] = []
    assert mgr.apply().inputs == []  # not verified: belief unchanged
    assert {k.chain for k in mgr.verify()} == {"na-a"}
    assert mgr.apply().ok
    assert len(kernel.tables[(4, "filter")]["na-a"]) == 2


def test_only_first_rule_carries_the_hash_and_edits_are_still_found(kernel: FakeKernel) -> None:
    mgr = IptablesManager("ns1", verify_interval=None)
    rules = [*drop_port(1)[:1], *drop_port(2)]
    mgr.set_chain(4, "filter", "na-a", rules)
    assert mgr.apply().ok
    lines = kernel.tables[(4, "filter")]["na-a"]
    assert ["na:" in line for line in lines] == [True, False, False]
    assert mgr.verify() == set()  # records the chain's saved text
    lines[1] = lines[1].replace("--dport 2", "--dport 3")  # same count, same first rule
    assert {k.chain for k in mgr.verify()} == {"na-a"}
    assert mgr.apply().ok
    assert kernel.tables[(4, "filter")]["na-a"][1].endswith("--dport 2 -j DROP")
    assert mgr.verify() == set()


def test_restore_settles_only_when_set_references_may_drop(kernel: FakeKernel) -> None:
    mgr = IptablesManager("ns1", verify_interval=None)
    in_set = Rule((SetMatch("na4a"),), ACCEPT)
    mgr.set_chain(4, "filter", "na-a", [in_set, *drop_port(1)])
    mgr.set_chain(4, "filter", "na-b", drop_port(1))
    assert mgr.apply().ok
    assert kernel.settled == [False]  # nothing existed
    mgr.set_chain(4, "filter", "na-b", drop_port(2))
    mgr.set_chain(4, "filter", "na-a", [in_set, *drop_port(2)])
    assert mgr.apply().ok
    assert kernel.settled[-1] is False  # set na4a still matched
    mgr.set_chain(4, "filter", "na-a", drop_port(3))
    assert mgr.apply().ok
    assert kernel.settled[-1] is True  # last reference to na4a gone
    mgr.set_chain(4, "filter", "na-a", [in_set])
    assert mgr.apply().ok
    mgr.remove_chain(4, "filter", "na-a")
    assert mgr.apply().ok
    assert kernel.settled[-1] is True  # deleted with its reference
    kernel.tables[(4, "filter")]["na-b"] = []
    assert mgr.verify()
    assert mgr.apply().ok
    assert kernel.settled[-1] is True  # unknown content: assume it held references


def test_bad_chain_isolated_and_retried(kernel: FakeKernel) -> None:
    mgr = IptablesManager("ns1")
    for name in ("na-a", "na-bad", "na-c"):
        mgr.set_chain(4, "filter", name, drop_port(1))
    result = mgr.apply()
    assert {k.chain for k in result.failed} == {"na-bad"}
    assert {k.chain for k in result.applied} == {"na-a", "na-c"}
    assert "na-bad" not in kernel.tables[(4, "filter")]
    mgr.remove_chain(4, "filter", "na-bad")
    assert mgr.apply().ok


def test_removed_hook_and_chain(kernel: FakeKernel) -> None:
    mgr = IptablesManager("ns1")
    mgr.set_chain(4, "filter", "na-a", drop_port(1))
    mgr.set_jumps(4, "filter", "INPUT", [Rule((), Jump("na-a"))])
    assert mgr.apply().ok
    mgr.clear_jumps(4, "filter", "INPUT")
    mgr.remove_chain(4, "filter", "na-a")
    assert set(mgr.apply().applied.values()) == {"deleted"}
    assert kernel.tables[(4, "filter")] == {"INPUT": [], "FORWARD": []}


def test_bad_declarations_rejected_before_kernel(kernel: FakeKernel) -> None:
    mgr = IptablesManager("ns1")
    with pytest.raises(ValueError):
        mgr.set_chain(4, "filter", "foreign", [])
    with pytest.raises(ValueError):
        mgr.set_chain(4, "filter", "na-FORWARD", [])
    with pytest.raises(ValueError):
        mgr.set_jumps(4, "raw", "FORWARD", [])
    with pytest.raises(ValueError):
        mgr.set_chain(5, "filter", "na-a", [])
    with pytest.raises(ValueError):
        IptablesManager("ns1", backend="iptables")
    assert kernel.restores == []

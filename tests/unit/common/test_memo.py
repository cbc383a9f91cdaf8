"""netagent.common.memo: memoisation bounded by the working set of the last two passes."""

from __future__ import annotations

from collections.abc import Sized

import pytest

from netagent.common import memo
from netagent.linux import ebtables, ebtables_saved
from netagent.linux.iptables import validate


class Counted:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, key: str) -> str:
        self.calls.append(key)
        if key == "bad":
            raise ValueError("bad key")
        return key.upper()


def test_a_key_is_computed_once_while_passes_use_it() -> None:
    fn = Counted()
    cached = memo.PassMemo(fn)
    for _ in range(5):
        assert cached("a") == "A"
        cached.rotate()
    assert fn.calls == ["a"]


def test_a_key_unused_for_two_passes_is_dropped() -> None:
    fn = Counted()
    cached = memo.PassMemo(fn)
    cached("a")
    cached.rotate()
    assert len(cached) == 1  # still held from the pass before
    cached.rotate()
    assert len(cached) == 0
    cached("a")
    assert fn.calls == ["a", "a"]


def test_errors_are_not_memoised() -> None:
    fn = Counted()
    cached = memo.PassMemo(fn)
    for _ in range(2):
        with pytest.raises(ValueError, match="bad key"):
            cached("bad")
    assert fn.calls == ["bad", "bad"]
    assert len(cached) == 0


def test_churn_holds_the_working_set_not_every_key_ever_seen() -> None:
    # 1,000 passes, each using the same 50 keys and 5 keys never seen before: an
    # lru_cache of 8,192 would hold all 5,050 keys; the memo holds the last two passes'
    fn = Counted()
    cached = memo.PassMemo(fn)
    for n in range(1000):
        for key in [f"stable-{i}" for i in range(50)] + [f"new-{n}-{i}" for i in range(5)]:
            cached(key)
        cached.rotate()
    assert len(cached) == 55  # the last pass's keys (the current generation is empty)
    assert sum(1 for c in fn.calls if c.startswith("stable-")) == 50


def test_a_generation_is_started_when_no_pass_ever_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memo, "MAX_ENTRIES", 10)
    cached = memo.PassMemo(Counted())
    for i in range(100):
        cached(f"k{i}")
    assert len(cached) <= 2 * memo.MAX_ENTRIES


def test_keyword_calls_are_computed_every_time() -> None:
    fn = Counted()
    cached = memo.PassMemo(fn)
    cached(key="a")
    cached(key="a")
    assert fn.calls == ["a", "a"] and len(cached) == 0


def test_new_pass_rotates_the_memos_of_the_rule_builders() -> None:
    # the validators and renderers that see every port's values are pass memos
    memos: list[Sized] = [
        ebtables._net,
        ebtables._lower,
        ebtables._chain_ok,
        ebtables_saved.canonical,
        ebtables_saved._value,
        validate._mac_address,
        validate._interface_name,
    ]
    assert all(isinstance(m, memo.PassMemo) for m in memos)
    validate.mac_address("fa:16:3e:00:00:01")
    assert len(validate._mac_address) >= 1
    memo.new_pass()
    memo.new_pass()
    assert all(len(m) == 0 for m in memos)

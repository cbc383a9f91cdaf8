"""Driver loading through stevedore with a type check."""

from __future__ import annotations

import pytest

from netagent.drivers import base, loader, noop


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        (base.L2Driver, noop.NoopL2Driver),
        (base.FirewallDriver, noop.NoopFirewallDriver),
        (base.L3Driver, noop.NoopL3Driver),
    ],
)
def test_noop_drivers_load_by_short_name(kind: type[base.DriverBase], cls: type) -> None:
    driver = loader.load(kind, "noop", conf=None)
    assert type(driver) is cls


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(loader.DriverLoadError) as info:
        loader.load(base.L2Driver, "does-not-exist", conf=None)
    message = str(info.value)
    assert "does-not-exist" in message
    assert "noop" in message
    assert "noop" in info.value.valid


def test_dotted_class_paths_are_not_accepted() -> None:
    with pytest.raises(loader.DriverLoadError):
        loader.load(base.L2Driver, "netagent.drivers.noop:NoopL2Driver", conf=None)


def test_wrong_base_class_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A firewall driver registered in the L2 group must be refused: load it through the
    # real entry point of another kind by pointing the kind at that group.
    class FakeKind(base.L2Driver):
        namespace = "netagent.firewall"

    with pytest.raises(loader.DriverLoadError) as info:
        loader.load(FakeKind, "noop", conf=None)
    assert "is not a FakeKind" in str(info.value)


def test_error_is_rebuildable_from_args() -> None:
    err = loader.DriverLoadError("netagent.l2", "x", "no such driver", ("noop",))
    again = type(err)(*err.args)
    assert str(again) == str(err)

"""Object pushes as member-update triggers: only membership changes mark groups."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest

from netagent.rpc import pushes, rejects

G1, G2, PORT, OTHER, AG = (str(uuid.UUID(int=n, version=4)) for n in range(1, 6))


def port(
    port_id: str = PORT,
    *,
    groups: tuple[str, ...] = (G1,),
    ips: tuple[str, ...] = ("192.0.2.5",),
    pairs: tuple[str, ...] = (),
    status: str = "ACTIVE",
    mac: str = "FA-16-3E-00-00-01",
) -> dict[str, Any]:
    """A Port primitive as Neutron 29 pushes it (netaddr's MAC format included)."""

    def child(name: str, **data: Any) -> dict[str, Any]:
        return {"versioned_object.name": name, "versioned_object.data": data}

    return {
        "versioned_object.name": "Port",
        "versioned_object.namespace": "versionedobjects",
        "versioned_object.version": "1.11",
        "versioned_object.data": {
            "id": port_id,
            "mac_address": mac,
            "status": status,
            "security_group_ids": list(groups),
            "fixed_ips": [child("IPAllocation", ip_address=ip) for ip in ips],
            "allowed_address_pairs": [
                child("AllowedAddressPair", ip_address=p, mac_address=mac) for p in pairs
            ],
        },
    }


@pytest.fixture
def tracker(monkeypatch: pytest.MonkeyPatch) -> pushes.MembershipTracker:
    monkeypatch.setattr(pushes, "REJECTIONS", rejects.Rejections())
    return pushes.MembershipTracker()


def test_first_push_of_a_port_marks_its_groups(tracker: pushes.MembershipTracker) -> None:
    assert tracker.groups_changed([port(groups=(G1, G2))], "updated") == {G1, G2}


def test_status_change_marks_nothing(tracker: pushes.MembershipTracker) -> None:
    tracker.groups_changed([port(status="DOWN")], "updated")
    assert tracker.groups_changed([port(status="ACTIVE")], "updated") == set()


@pytest.mark.parametrize(
    "change",
    [
        {"pairs": ("203.0.113.145/32",)},
        {"ips": ("192.0.2.6",)},
        {"mac": "FA-16-3E-00-00-02"},
    ],
    ids=["address pair added", "fixed ip changed", "mac changed"],
)
def test_membership_change_marks_the_groups(
    tracker: pushes.MembershipTracker, change: dict[str, Any]
) -> None:
    tracker.groups_changed([port()], "updated")
    assert tracker.groups_changed([port(**change)], "updated") == {G1}


def test_group_change_marks_old_and_new_groups(tracker: pushes.MembershipTracker) -> None:
    tracker.groups_changed([port(groups=(G1,))], "updated")
    assert tracker.groups_changed([port(groups=(G2,))], "updated") == {G1, G2}


def test_deleted_port_is_forgotten(tracker: pushes.MembershipTracker) -> None:
    tracker.groups_changed([port()], "updated")
    deleted = {"versioned_object.name": "Port", "versioned_object.data": {"id": PORT}}
    assert tracker.groups_changed([deleted], "deleted") == set()
    assert tracker.groups_changed([port()], "updated") == {G1}  # new to the tracker


def test_address_group_push_marks_the_address_group(tracker: pushes.MembershipTracker) -> None:
    ag = {"versioned_object.name": "AddressGroup", "versioned_object.data": {"id": AG}}
    assert tracker.groups_changed([ag], "updated") == {AG}


def test_memory_is_bounded() -> None:
    tracker = pushes.MembershipTracker(max_tracked=2)
    ids = [str(uuid.UUID(int=100 + n, version=4)) for n in range(3)]
    for port_id in ids:
        tracker.groups_changed([port(port_id)], "updated")
    # the third port started the memory afresh: the first is unknown again
    assert tracker.groups_changed([port(ids[0])], "updated") == {G1}
    assert tracker.groups_changed([port(ids[2])], "updated") == set()


def test_bad_objects_are_rejected_and_the_others_still_count(
    tracker: pushes.MembershipTracker, caplog: pytest.LogCaptureFixture
) -> None:
    bad = [
        "not an object",
        {"versioned_object.name": "Network", "versioned_object.data": {"id": G1}},
        {"versioned_object.name": "Port", "versioned_object.data": ["x"]},
        port(OTHER, groups=("not-a-uuid",)),
        port(OTHER, ips=("192.0.2.5; rm -rf /",)),
        port(OTHER, pairs=("203.0.113.0/24 -j ACCEPT",)),
        port("../etc/passwd"),
    ]
    with caplog.at_level(logging.WARNING):
        assert tracker.groups_changed([*bad, port(groups=(G2,))], "updated") == {G2}
        assert tracker.groups_changed("nope", "updated") == set()
        assert tracker.groups_changed([port()], "created") == set()
    assert pushes.REJECTIONS.total() == len(bad) + 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

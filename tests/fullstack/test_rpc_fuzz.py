"""Fuzzing the real RPC consumer: malformed notifications over real RabbitMQ.

A running ``netagent-agent`` (Neutron source, in a simulated host, on a vhost of the shared
broker) with two wired VMs that ping each other receives ``NETAGENT_FUZZ_CASTS``
(default 2,000; the issue's figure is 10,000) casts built from a fixed seed: every
notification method netagent consumes plus unknown ones, on every topic, with arguments of
random shape (wrong types, nested garbage, huge numbers, long and odd strings, ids that
are not UUIDs, real ids of its own ports mixed in, unknown argument names, odd versions),
while the fake server answers the details of one port with garbage. Afterwards: the same
agent process is alive, nothing it logged is an ERROR or a traceback, the two VMs still
ping each other and their taps kept their ifindexes and bridge, and every kind of
rejection was logged at WARNING once.
"""

from __future__ import annotations

import os
import random
import re
import string
import uuid
from collections.abc import Callable
from typing import Any

from tests.fullstack import harness
from tests.fullstack.harness import Fabric, links, wait_for
from tests.fullstack.test_neutron_source import NeutronHost, env, vhost  # noqa: F401

CASTS = int(os.environ.get("NETAGENT_FUZZ_CASTS", "2000"))
SEED = int(os.environ.get("NETAGENT_FUZZ_SEED", "1729"))

#: topic suffix -> (method, version, argument names) the server really sends there
METHODS: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {
    "port-update": [
        (
            "port_update",
            "1.0",
            ("port", "network_type", "segmentation_id", "physical_network"),
        )
    ],
    "port-delete": [("port_delete", "1.0", ("port_id",))],
    "network-update": [("network_update", "1.4", ("network",))],
    "network-delete": [("network_delete", "1.0", ("network_id",))],
    "binding-activate": [("binding_activate", "1.5", ("port_id", "host"))],
    "binding-deactivate": [("binding_deactivate", "1.5", ("port_id", "host", "network_id"))],
    "security_group-update": [
        ("security_groups_rule_updated", "1.1", ("security_groups",)),
        ("security_groups_member_updated", "1.1", ("security_groups",)),
    ],
    "tunnel-update": [("tunnel_update", "1.0", ("tunnel_ip", "tunnel_type", "tunnel_id"))],
    "tunnel-delete": [("tunnel_delete", "1.0", ("tunnel_ip", "tunnel_type"))],
    "l2population-update": [
        ("add_fdb_entries", "1.0", ("fdb_entries", "host")),
        ("remove_fdb_entries", "1.0", ("fdb_entries", "host")),
        ("update_fdb_entries", "1.0", ("fdb_entries", "host")),
    ],
}


class Garbage:
    """Random values of every JSON shape, some of them almost right."""

    def __init__(self, rng: random.Random, good_ids: list[str]) -> None:
        self.rng = rng
        self.good_ids = good_ids

    def value(self, depth: int = 0) -> Any:
        makers: list[Callable[[], Any]] = [
            lambda: None,
            lambda: self.rng.choice([True, False]),
            lambda: self.rng.randint(-(2**70), 2**70),
            lambda: self.rng.random() * 1e300,
            self.text,
            self.almost_id,
            lambda: self.rng.choice(self.good_ids),
            lambda: "198.18." + str(self.rng.randint(0, 300)) + ".1",
        ]
        if depth < 3:
            makers += [
                lambda: [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))],
                lambda: {self.key(): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))},
                lambda: {"id": self.value(depth + 1), self.key(): self.value(depth + 1)},
            ]
        return self.rng.choice(makers)()

    def text(self) -> str:
        alphabet = string.printable + "\u202e\u200b\x00é中"
        size = self.rng.choice([0, 1, 8, 36, 300, 5000])
        return "".join(self.rng.choice(alphabet) for _ in range(size))

    def almost_id(self) -> str:
        good = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return self.rng.choice(
            [good.upper(), good[:-1], good + "0", good.replace("-", ""), f"../{good}", good]
        )

    def key(self) -> str:
        return self.rng.choice(["id", "ports", "chg_ip", "before", "after", self.text()[:20]])

    def arguments(self, names: tuple[str, ...]) -> dict[str, Any]:
        args = {name: self.value() for name in names if self.rng.random() < 0.8}
        if self.rng.random() < 0.1:
            args[self.rng.choice(["bogus", "port_ids", "x" * 40])] = self.value()
        return args


def test_fuzzed_notifications_change_nothing_else(env: NeutronHost, fabric: Fabric) -> None:  # noqa: F811
    vms = env.add_vms(3)
    good, bad = vms[:2], vms[2]
    env.fake.override[bad.port_id[:11]] = {"device": bad.port_id[:11], "mac_address": [1, 2]}
    env.start_agent()
    env.wait_converged(good)
    fabric.wait_ping(good[0], good[1])
    before = {vm.tap: links(env.host.netns)[vm.tap] for vm in good}
    pid = env.pid

    rng = random.Random(SEED)
    garbage = Garbage(rng, [vm.port_id for vm in vms])
    topics = sorted(METHODS)
    for _ in range(CASTS):
        suffix = rng.choice(topics)
        method, version, names = rng.choice(METHODS[suffix])
        if rng.random() < 0.05:
            method = rng.choice(["port_frobnicate", "__init__", "_groups", "port_update "])
        if rng.random() < 0.05:
            version = rng.choice(["1.99", "2.0", "0.1", "1.0.0.0"])
        env.fake.cast(f"q-agent-notifier-{suffix}", method, version, **garbage.arguments(names))

    # the agent worked through them: a well-formed update of a good port is acted upon
    calls_before = len(env.details_calls())
    env.fake.cast("q-agent-notifier-port-update", "port_update", port={"id": good[0].port_id})
    wait_for(
        "the agent refetches the good port after the fuzz",
        lambda: any(
            good[0].port_id[:11] in c["devices"] for c in env.details_calls()[calls_before:]
        ),
        timeout=120,
    )

    assert env.host.agent_alive() and env.pid == pid
    log = env.log()
    assert " ERROR " not in log and "Traceback" not in log, [
        line for line in log.splitlines() if " ERROR " in line or "Traceback" in line
    ][:5]
    after = links(env.host.netns)
    for vm in good:
        assert after[vm.tap]["ifindex"] == before[vm.tap]["ifindex"]
        assert after[vm.tap].get("master") == before[vm.tap].get("master")
    fabric.wait_ping(good[0], good[1])
    fabric.wait_ping(good[1], good[0])
    rejected = [
        line.split("Ignoring ", 1)[1]
        for line in log.splitlines()
        if " WARNING netagent.rpc.rejects " in line
    ]
    kinds = [tuple(text.split(": ", 2)[:2]) for text in rejected]
    # each kind of rejection once at WARNING (the rest at DEBUG): far fewer lines than casts
    assert len(kinds) == len(set(kinds)) >= 5, rejected
    assert len(rejected) < CASTS / 10
    assert log.count("Ignoring ") >= CASTS / 2  # the others are there, at DEBUG


# -- sync_routers replies --------------------------------------------------------------

ROUTER_CASTS = int(os.environ.get("NETAGENT_FUZZ_ROUTER_CASTS", "300"))


def _router(host: NeutronHost, router_id: str, port_id: str, address: str) -> dict[str, Any]:
    """A ``sync_routers`` entry (§6.4): one interface on the host's network."""
    subnet = host.fabric._subnet_id(host.network)
    return {
        "id": router_id,
        "name": "r",
        "admin_state_up": True,
        "enable_snat": True,
        "_interfaces": [
            {
                "id": port_id,
                "network_id": host.network,
                "mac_address": "fa:16:3e:00:ee:01",
                "device_owner": "network:router_interface",
                "device_id": router_id,
                "fixed_ips": [{"subnet_id": subnet, "ip_address": address, "prefixlen": 24}],
                "subnets": [{"id": subnet, "cidr": "192.0.2.0/24", "gateway_ip": address}],
                "mtu": 1450,
                "binding:host_id": host.host.name,
                "port_security_enabled": False,
                "security_groups": [],
            }
        ],
        "_floatingips": [],
        "routes": [],
        "distributed": False,
        "ha": False,
    }


def _mutate(rng: random.Random, garbage: Garbage, value: Any, depth: int = 0) -> Any:
    """``value`` with one field somewhere inside replaced, added or removed."""
    if isinstance(value, dict) and value and depth < 4 and rng.random() < 0.7:
        key = rng.choice(sorted(value))
        changed = dict(value)
        roll = rng.random()
        if roll < 0.15:
            del changed[key]
        elif roll < 0.25:
            changed[garbage.key()] = garbage.value()
        else:
            changed[key] = _mutate(rng, garbage, value[key], depth + 1)
        return changed
    if isinstance(value, list) and value and depth < 4 and rng.random() < 0.7:
        index = rng.randrange(len(value))
        return [
            *value[:index],
            _mutate(rng, garbage, value[index], depth + 1),
            *value[index + 1 :],
        ]
    return garbage.value()


def test_fuzzed_sync_routers_replies_leave_the_good_router_alone(
    env: NeutronHost,  # noqa: F811
    fabric: Fabric,
) -> None:
    env.host.host_mounts = True  # the qrouter- namespace visible from here
    vm = env.add_vms(1)[0]
    good_id, good_port = str(uuid.uuid4()), str(uuid.uuid4())
    env.fabric.namespaces.insert(0, f"qrouter-{good_id}")
    good = _router(env, good_id, good_port, "192.0.2.1")
    env.fake.ports[good_port] = env.details(
        vm,
        port_id=good_port,
        mac_address="fa:16:3e:00:ee:01",
        device_owner="network:router_interface",
        fixed_ips=[{"subnet_id": env.fabric._subnet_id(env.network), "ip_address": "192.0.2.1"}],
        port_security_enabled=False,
    )
    env.fake.routers[good_id] = good
    env.start_agent("l3_driver = namespace\n")
    env.wait_converged([vm])
    router_ns = f"qrouter-{good_id}"
    wait_for("router answers", lambda: harness.can_ping(vm.netns, "192.0.2.1"), timeout=40)
    before = links(router_ns)
    pid = env.pid

    rng = random.Random(SEED)
    garbage = Garbage(rng, [good_id, good_port, vm.port_id])
    bad_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(40)]
    # a mutation may leave a router valid: the agent builds it, and it stays after the
    # agent stops (a stopped agent leaves the data plane), so the fabric removes them all
    env.fabric.namespaces[:0] = [f"qrouter-{rid}" for rid in bad_ids]
    for n, rid in enumerate(bad_ids):
        # an almost-right router (another address, so a wrong acceptance cannot collide)
        sane = _router(env, rid, str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                       f"192.0.2.{100 + n}")  # fmt: skip
        env.fake.routers[rid] = _mutate(rng, garbage, sane)
    replies = 0
    for n in range(ROUTER_CASTS):
        roll = rng.random()
        # the whole reply garbage (a few: each fails the pass, retried after a backoff
        # with the ports already delivered), or the good router next to a mutated copy
        if roll < 0.1 and n % 30 == 0:
            env.fake.sync_routers_replies.append(garbage.value())
        elif roll < 0.1:
            env.fake.sync_routers_replies.append([good, _mutate(rng, garbage, good)])
        ids: Any = rng.sample([*bad_ids, good_id], rng.randint(1, 4))
        if rng.random() < 0.1:
            ids = garbage.value()
        env.fake.cast_to("l3_agent", env.host.name, "routers_updated", "1.4", routers=ids)
        if env.fake.sync_routers_replies:
            # one answer per call: the agent coalesces casts, so wait for this one to go
            replies += 1
            env.fake.cast_to("l3_agent", env.host.name, "routers_updated", "1.4",
                             routers=[good_id])  # fmt: skip
            wait_for("the queued reply answered", lambda: not env.fake.sync_routers_replies,
                     timeout=60)  # fmt: skip
    assert replies >= 10

    # worked through: a well-formed update of the good router is fetched afterwards
    calls = len(env.fake.calls_of("sync_routers"))
    env.fake.cast_to("l3_agent", env.host.name, "routers_updated", "1.4", routers=[good_id])
    wait_for(
        "the agent fetches the good router after the fuzz",
        lambda: any(
            good_id in (c.get("router_ids") or [])
            for c in env.fake.calls_of("sync_routers")[calls:]
        ),
        timeout=120,
    )

    assert env.host.agent_alive() and env.pid == pid
    log = env.log()
    assert " ERROR " not in log and "Traceback" not in log, [
        line for line in log.splitlines() if " ERROR " in line or "Traceback" in line
    ][:5]
    after = links(router_ns)
    for name, link in before.items():
        assert after[name]["ifindex"] == link["ifindex"], name
    assert harness.can_ping(vm.netns, "192.0.2.1")
    # no bad router was built
    namespaces = harness.run("ip", "netns", "list").stdout
    assert not [rid for rid in bad_ids if rid in namespaces and rid not in _accepted(log, rid)]
    # each bad router is logged with its id, once per reason, however often it came back
    warnings = [
        re.sub(r"^.* WARNING ", "", re.sub(r"\[(None req-|-)[^]]*\] ", "", line))
        for line in log.splitlines()
        if " WARNING " in line
    ]
    skipped = [w for w in warnings if " skipped: " in w]
    assert len(skipped) == len(set(skipped)) > 0, _kinds(skipped)
    assert all(re.search(r"[0-9a-f]{8}-[0-9a-f-]{27}|#\d", w) for w in skipped)
    # the rest: a failed pass for each garbage reply, the broker's own chatter
    others = [w for w in warnings if w not in skipped and not w.startswith("amqp ")]
    assert len(others) <= replies, _kinds(others)


def _kinds(lines: list[str]) -> list[tuple[int, str]]:
    """Log lines by kind (text after the logger name, ids and numbers blanked), commonest
    first."""
    kinds: dict[str, int] = {}
    for line in lines:
        text = re.sub(r"\[[^]]*\] ", "", line.split(" WARNING ", 1)[-1])
        text = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+", "#", text)[:160]
        kinds[text] = kinds.get(text, 0) + 1
    return sorted(((n, k) for k, n in kinds.items()), reverse=True)


def _accepted(log: str, router_id: str) -> str:
    """The log lines that say ``router_id`` was built (a mutation may leave it valid)."""
    return "\n".join(line for line in log.splitlines() if router_id in line and " ready" in line)

"""The consumer probe over fake://: the agent's own casts through its consumers tell
whether notifications may have been lost, and a full resync is asked for once every
consumer answers again (issue 15: no log text involved)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import oslo_messaging
import pytest
from oslo_config import cfg

from netagent.rpc import consumers, probe
from netagent.sources.neutron import NeutronSource
from tests.fullstack.fake_neutron import FakeNeutron
from tests.unit.rpc.helpers import details, port_id, wait_for
from tests.unit.rpc.test_consumers import RecordingSink
from tests.unit.rpc.test_source import Core, FakeMonitor, tap


class ProbeSink(RecordingSink):
    """Hands probes to the probe under test, unless ``dropping`` (a lost probe)."""

    def __init__(self) -> None:
        super().__init__()
        self.probe: probe.ConsumerProbe | None = None
        self.dropping = False
        self.arrived: list[tuple[str, object]] = []

    def probe_returned(self, topic: str, token: object, seq: object) -> None:
        if self.probe is not None and not self.dropping:
            self.probe.returned(topic, token, seq)
        self.arrived.append((topic, seq))  # after: the test waits for it


Setup = tuple[probe.ConsumerProbe, ProbeSink, list[str]]


@pytest.fixture
def setup(transport: Any) -> Iterator[Setup]:
    """Consumers of host ``cmp1`` and a probe (ticked by hand) with their topics."""
    sink = ProbeSink()
    group = consumers.Consumers(transport, "cmp1", sink)
    group.start()
    recovered: list[str] = []
    sink.probe = probe.ConsumerProbe(transport, "cmp1", group.topics, 3600, recovered.append)
    yield sink.probe, sink, recovered
    group.stop()


def round_back(prb: probe.ConsumerProbe) -> bool:
    """Whether every probe of the last tick came back."""
    return all(prb._returned.get(t, -1) >= s for t, s in prb._sent.items())


def tick_and_wait(prb: probe.ConsumerProbe, sink: ProbeSink) -> int:
    """One tick, then until its probes arrived (dropped or not); how many it cast."""
    before = len(sink.arrived)
    prb.tick()
    casts = len(prb._sent)
    wait_for(f"{casts} probes", lambda: len(sink.arrived) >= before + casts)
    return casts


def test_steady_state_one_probe_per_tick_in_turn_and_no_resync(setup: Setup) -> None:
    prb, sink, recovered = setup
    for _ in range(len(consumers.CONSUMERS) + 1):
        assert tick_and_wait(prb, sink) == 1
    assert not prb.broken
    assert recovered == []
    # every consumer was probed in turn, through its own host queue
    assert {t for t, _ in sink.arrived} == {t for t, _ in consumers.CONSUMERS}


def test_lost_probe_then_resync_once_every_consumer_answers(setup: Setup) -> None:
    prb, sink, recovered = setup
    assert tick_and_wait(prb, sink) == 1
    sink.dropping = True  # the broker lost it
    assert tick_and_wait(prb, sink) == 1
    sink.dropping = False
    # the lost one noticed: every consumer probed
    assert tick_and_wait(prb, sink) == len(consumers.CONSUMERS)
    assert prb.broken and recovered == []
    # the whole round came back: one resync, and one probe a tick again
    assert tick_and_wait(prb, sink) == 1
    assert not prb.broken
    assert len(recovered) == 1 and "probe not back from" in recovered[0]
    assert tick_and_wait(prb, sink) == 1
    assert len(recovered) == 1


def test_no_resync_while_a_consumer_stays_silent(setup: Setup) -> None:
    prb, sink, recovered = setup
    prb.note_broken("a failed pass")
    sink.dropping = True
    for _ in range(3):
        assert tick_and_wait(prb, sink) == len(consumers.CONSUMERS)
        assert prb.broken
    sink.dropping = False
    assert tick_and_wait(prb, sink) == len(consumers.CONSUMERS)
    assert recovered == []
    assert tick_and_wait(prb, sink) == 1
    assert recovered == ["RPC consumers answer again after a failed pass"]


def test_failed_cast_counts_as_an_outage(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broker that refuses the cast (oslo.messaging raises; fake:// cannot be stopped)."""
    prb, sink, recovered = setup

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise oslo_messaging.MessageDeliveryFailure("broker away")

    for client in prb._clients.values():
        monkeypatch.setattr(client, "cast", refuse)
    assert tick_and_wait(prb, sink) == 0
    assert prb.broken
    monkeypatch.undo()
    assert tick_and_wait(prb, sink) == len(consumers.CONSUMERS)
    assert recovered == []
    assert tick_and_wait(prb, sink) == 1
    assert len(recovered) == 1 and "MessageDeliveryFailure" in recovered[0]


@pytest.mark.parametrize(
    "token, seq",
    [("someone-else", 1), (None, 1), ("own", "1"), ("own", True), ("own", None)],
)
def test_foreign_or_malformed_probes_do_not_count(
    setup: Setup, token: object, seq: object
) -> None:
    prb, sink, _ = setup
    sink.dropping = True
    assert tick_and_wait(prb, sink) == 1
    (topic, _), *_ = sink.arrived
    prb.returned(topic, prb.token if token == "own" else token, seq)
    prb.tick()
    assert prb.broken


@pytest.fixture
def source(
    conf: cfg.ConfigOpts, transport: Any, fake: FakeNeutron
) -> Iterator[Callable[[], NeutronSource]]:
    started: list[NeutronSource] = []

    def make() -> NeutronSource:
        conf.set_override("probe_interval", 3600, group="neutron")
        for n in range(3):
            fake.ports[port_id(n)] = details(port_id(n))
        source = NeutronSource(
            conf, transport, FakeMonitor([tap(port_id(n)) for n in range(3)]), Core().status
        )
        source.start(Core().on_update)
        started.append(source)
        return source

    yield make
    for source in started:
        source.stop()


def test_source_fetches_everything_once_its_consumers_answer_again(
    source: Callable[[], NeutronSource], fake: FakeNeutron
) -> None:
    src = source()
    wait_for("the first pass", lambda: src.passes >= 1)
    assert src.probe is not None
    prb = src.probe
    before = len(fake.calls)
    prb.note_broken("a failed pass")
    for _ in range(3):  # one probe, then a whole round, then its check
        prb.tick()
        wait_for("the tick's probes back", lambda: round_back(prb))

    def full_details() -> bool:
        fetched = {
            d
            for m, k in fake.calls[before:]
            if m == "get_devices_details_list_and_failed_devices"
            for d in k["devices"]
        }
        return fetched >= {tap(port_id(n))[3:] for n in range(3)}

    wait_for("a full pass after the consumers answered", full_details)

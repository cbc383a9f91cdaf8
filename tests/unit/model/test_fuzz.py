"""Property tests: any payload gives a valid object or a ModelError, nothing else.

Every parser gets payloads mutated from a valid one (wrong types, junk strings with quotes,
newlines, control and bidi characters, huge integers, null, missing and extra keys,
near-miss strings) and fully random JSON-like values. Valid results are checked for the
model's invariants: ids are lower-case UUIDs and no string carries whitespace, quotes,
backslashes or control characters.

Examples per run: ``len(PARSERS) * (MUTATED_EXAMPLES + RANDOM_EXAMPLES)`` = 18 * (470 + 110)
= 10,440 (asserted by :func:`test_example_budget`).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import random
import re
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netagent.model import (
    AddressGroup,
    Agent,
    DesiredState,
    DeviceDetails,
    FloatingIP,
    ModelError,
    Network,
    Port,
    Router,
    SecurityGroup,
    SecurityGroupInfo,
    SecurityGroupRule,
    Subnet,
)
from netagent.sources.statefile import LoadResult, StateFileError, parse_state
from tests.unit.model import samples as s

MUTATED_EXAMPLES = 470
RANDOM_EXAMPLES = 110
EXAMPLE = Path(__file__).parents[3] / "etc" / "netagent" / "examples" / "state.yaml"
STATE_DOC = yaml.safe_load(EXAMPLE.read_text())

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
BAD_CHARS = frozenset("'\"`\\")
NOT_UUID_FIELDS = frozenset({"device_id"})


def _rpc_group(data: Any) -> object:
    if isinstance(data, dict):
        return SecurityGroup.from_rpc(data.get("id"), data.get("rules"))
    return SecurityGroup.from_rpc(data, data)


def _state(data: Any) -> object:
    try:
        return parse_state(data, "fuzz")
    except StateFileError:
        return None


PARSERS: dict[str, tuple[Callable[[Any], object], Callable[[], Any]]] = {
    "network": (Network.from_api, s.network),
    "network-details": (Network.from_device_details, s.device_details),
    "subnet": (Subnet.from_api, s.subnet),
    "subnet6": (Subnet.from_api, s.subnet6),
    "port": (Port.from_api, s.port),
    "port-details": (
        lambda d: Port.from_device_details(d, host="cmp1", security_groups=()),
        s.device_details,
    ),
    "device-details": (lambda d: DeviceDetails.from_rpc(d, host="cmp1"), s.device_details),
    "rule": (SecurityGroupRule.from_api, s.rule),
    "rpc-rule": (lambda d: SecurityGroupRule.from_rpc(d, s.SG), s.rpc_rule),
    "security-group": (SecurityGroup.from_api, s.security_group),
    "rpc-security-group": (
        _rpc_group,
        lambda: {"id": s.SG, "rules": s.sg_info()["security_groups"][s.SG]},
    ),
    "address-group": (AddressGroup.from_api, s.address_group),
    "floatingip": (FloatingIP.from_api, s.floatingip),
    "sync-router": (Router.from_sync, s.sync_router),
    "api-router": (Router.from_api, s.api_router),
    "agent": (Agent.from_api, s.agent),
    "sg-info": (SecurityGroupInfo.from_rpc, s.sg_info),
    "state": (_state, lambda: copy.deepcopy(STATE_DOC)),
}

NASTY_STRINGS = [
    "",
    " ",
    "\n",
    "'",
    '"',
    "`",
    "\\",
    "\x00",
    "\x7f",
    "\u0085",
    "\u00a0",
    "\u200b",
    "\u202e",
    "\ufeff",
    "\udcff",
    "a b",
    "tcp\n",
    "1.2.3",
    "::",
    "::/0",
    "0.0.0.0/0",
    "fe80::1%eth0",
    "192.0.2.1/33",
    "\uff11\uff19\uff12.0.2.1",
    "\u0661\u0662",
    "FA:16:3E:12:34:56",
    "01:00:5e:00:00:01",
    "3F1C2A8E-5D0B-4C57-9A57-0D5F8B5D2E11",
    "x" * 300,
    "-1",
    "65536",
    "icmp",
    "any",
    "IPv6",
    "true",
]


def _power_of_ten(digits: int) -> int:
    """Integers too large for ``str()`` (Python refuses more than 4300 digits)."""
    return int(10**digits)


junk_text = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-70000, max_value=70000),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, -1, 2**24, 2**31, 2**63, 10**400]),
    st.sampled_from([4400, 5000]).map(_power_of_ten),
    st.floats(allow_nan=True, allow_infinity=True),
    junk_text,
)
jsonish = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=4,
)


JUNK_ALPHABET = (
    "abcdefABCDEF0123456789:./-_xyz"
    " \t\n\r\x00\x1b\x7f\x85\xa0\u2028\u200b\u202e\ufeff\udcff'\"`\\%;,{}$é\u0661\uff11"
)


def junk_text(rng: random.Random) -> str:
    """A string likely to be nearly valid, or to smuggle something dangerous."""
    choice = rng.randrange(3)
    if choice == 0:
        return rng.choice(NASTY_STRINGS)
    if choice == 1:
        return "".join(rng.choice(JUNK_ALPHABET) for _ in range(rng.randrange(24)))
    return "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(8)))


def junk(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON-like value (plus huge integers and non-finite floats)."""
    choice = rng.randrange(10 if depth < 2 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.random() < 0.5
    if choice == 2:
        return rng.randint(-70000, 70000)
    if choice == 3:
        return rng.choice(
            [-(2**80), 2**63, 2**24, 10**400, _power_of_ten(4400), rng.getrandbits(90)]
        )
    if choice == 4:
        return rng.choice([0.0, -1.5, 22.0, 1e308, float("inf"), float("nan")])
    if choice in (5, 6, 7):
        return junk_text(rng)
    if choice == 8:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {junk_text(rng): junk(rng, depth + 1) for _ in range(rng.randrange(4))}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _near_miss(rng: random.Random, value: Any) -> Any:
    if isinstance(value, bool):
        return rng.choice([int(value), str(value).lower(), None])
    if isinstance(value, int) and value.bit_length() < 64:
        return rng.choice([value + 1, value - 1, -value, value * 2**40, str(value), float(value)])
    if isinstance(value, str) and value:
        where = rng.randint(0, len(value))
        spliced = value[:where] + junk_text(rng) + value[where:]
        return rng.choice([spliced, spliced, value.upper(), value[:-1], f" {value}", [value]])
    return junk(rng)


def _text(value: Any) -> str:
    try:
        return str(value)
    except ValueError:
        return "<huge>"


def mutate(rng: random.Random, payload: Any) -> Any:
    """Apply one to four random mutations to a valid payload, in place."""
    for _ in range(rng.randint(1, 4)):
        paths = _paths(payload)
        if not paths:
            return junk(rng)
        path = rng.choice(paths)
        parent: Any = payload
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        operation = rng.choice(["junk", "near", "near", "none", "delete", "extra", "wrap"])
        if operation == "junk":
            parent[key] = junk(rng)
        elif operation == "near":
            parent[key] = _near_miss(rng, parent[key])
        elif operation == "none":
            parent[key] = None
        elif operation == "delete":
            del parent[key]
        elif operation == "extra" and isinstance(parent, dict):
            parent[junk_text(rng)] = junk(rng)
        else:
            parent[key] = rng.choice([[parent[key]], {"value": parent[key]}, _text(parent[key])])
    return payload


@st.composite
def random_payload(draw: st.DrawFn, make: Callable[[], Any]) -> Any:
    keys = list(make()) if isinstance(make(), dict) else ["x"]
    return draw(
        st.one_of(jsonish, st.dictionaries(st.sampled_from(keys), jsonish, max_size=len(keys)))
    )


def check_clean(value: object, field: str = "") -> None:
    """Assert the model invariants on a parsed object, recursively."""
    if isinstance(value, ModelError):
        check_error(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            check_clean(getattr(value, item.name), item.name)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_clean(key, field)
            check_clean(item, field)
    elif isinstance(value, tuple | frozenset | list):
        for item in value:
            check_clean(item, field)
    elif isinstance(value, str):
        check_string(value, field)


def check_string(value: str, field: str) -> None:
    if isinstance(value, enum.Enum):
        return
    display_name = field == "name"  # shown only, never rendered: see validate.name
    for char in value:
        if display_name and char in " '\"":
            continue
        assert char not in BAD_CHARS, (field, value)
        assert not unicodedata.category(char).startswith("C"), (field, value)
        assert not char.isspace() or (field == "agent_type" and char == " "), (field, value)
    is_id_field = field == "id" or field.endswith("_id") or field == "security_groups"
    if is_id_field and field not in NOT_UUID_FIELDS:
        assert UUID_RE.fullmatch(value), (field, value)


def check_error(error: ModelError) -> None:
    text = str(error)
    assert text.isprintable(), text
    assert error.field and error.reason and error.kind
    assert str(ModelError(*error.args)) == text
    if error.object_id is not None and error.kind != "agent":
        assert UUID_RE.fullmatch(error.object_id)


def run(parser: Callable[[Any], object], payload: Any) -> None:
    try:
        result = parser(payload)
    except ModelError as error:
        check_error(error)
        return
    if isinstance(result, LoadResult):
        assert isinstance(result.state, DesiredState)
        for error in result.errors:
            check_error(error)
    check_clean(result)


FUZZ_SETTINGS = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=MUTATED_EXAMPLES, **FUZZ_SETTINGS)  # type: ignore[arg-type]
@given(rng=st.randoms(use_true_random=False))
def test_mutated_payloads(name: str, rng: random.Random) -> None:
    parser, make = PARSERS[name]
    run(parser, mutate(rng, make()))


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=RANDOM_EXAMPLES, **FUZZ_SETTINGS)  # type: ignore[arg-type]
@given(data=st.data())
def test_random_payloads(name: str, data: st.DataObject) -> None:
    parser, make = PARSERS[name]
    run(parser, data.draw(random_payload(make)))


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_valid_samples_pass_the_invariants(name: str) -> None:
    parser, make = PARSERS[name]
    result = parser(make())
    assert result is not None
    if isinstance(result, LoadResult | SecurityGroupInfo):
        assert result.errors == ()
    check_clean(result)


def test_example_budget() -> None:
    total = len(PARSERS) * (MUTATED_EXAMPLES + RANDOM_EXAMPLES)
    print(f"fuzz examples per run: {total}")
    assert total >= 10_000

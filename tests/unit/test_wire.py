"""The msgspec decoder (``cxpulse.models.wire``) judges every message exactly as the pydantic models do.

The pydantic models of ``cxpulse.models.events`` are the reference. For every message, the two paths must
either both accept it, with equal field values (type included: ``5`` and ``5.0`` differ) and equal ``ts_us``,
or both refuse it with the same ``InvalidEvent.kind`` and ``reason``. The decoder falls back to pydantic's
values when msgspec refuses what pydantic accepts; that would hide a disagreement from a comparison of
results, so every check also asserts that ``wire.disagreements()`` did not move.

Parts: (a) a hypothesis generator of near-valid and hostile messages, written as raw JSON text so that it can
hold what ``orjson.dumps`` cannot write (duplicate keys, ``1e400``, integers beyond 64 bits, invalid UTF-8,
deep nesting, lone surrogates); (b) timestamps with literal expected microseconds, and the fast timestamp
parser against the reference over every ``:MM:SS`` spelling; (c) the whole simulator output (valid, and with
its deliberately invalid events) and the Anonymous Bank day through the importer.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import string
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from cxpulse.importers.anonymous_bank import convert_rows, read_csv
from cxpulse.models import wire
from cxpulse.models.events import (
    InvalidEvent,
    parse_any_event,
    parse_contact_event,
    parse_rfc3339,
    parse_survey_response,
    to_us,
)
from cxpulse.simulator.centre import load_centre
from cxpulse.simulator.engine import Simulation
from cxpulse.simulator.events import SURVEY_TOPIC
from cxpulse.simulator.writers import encode

REPO = Path(__file__).resolve().parents[2]
CSV_PATH = REPO.parent / "shared" / "data" / "anonymous-bank" / "calls_one_day.csv"
START_MS = int(datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc).timestamp() * 1000)  # a Monday, 06:00 UTC

FIELDS = (
    "type", "event_id", "ts_us", "contact_id", "customer_id", "channel", "queue", "reason", "priority",
    "agent_id", "team", "talk_seconds", "hold_seconds", "wrap_seconds", "resolved", "transferred",
    "disposition", "nps", "csat", "comment", "survey_event_id",
)
PAIRS: tuple[tuple[str, Callable[[Any], Any], Callable[[Any], Any]], ...] = (
    ("contact", parse_contact_event, wire.decode_contact_event),
    ("survey", parse_survey_response, wire.decode_survey_response),
    ("any", parse_any_event, wire.decode_any_event),
)
_MISSING = object()


def _values(event: Any) -> dict[str, tuple[str, str]]:
    """The attributes the core reads, each as (type name, repr): ``5 != 5.0`` and ``-0.0 != 0.0`` here."""
    out = {}
    for name in FIELDS:
        value = getattr(event, name, _MISSING)
        if value is not _MISSING:
            out[name] = (type(value).__name__, repr(value))
    return out


def _verdict(parse: Callable[[Any], Any], raw: bytes | str) -> tuple[Any, ...]:
    try:
        event = parse(raw)
    except InvalidEvent as exc:
        return ("refused", exc.kind, exc.reason)
    return ("accepted", _values(event))


def assert_agree(raw: bytes | str) -> tuple[Any, ...]:
    """Both paths, on all three topics' functions, give the same verdict; returns the ``any`` verdict."""
    verdict: tuple[Any, ...] = ()
    for _, parse, decode in PAIRS:
        before = wire.disagreements()
        reference = _verdict(parse, raw)
        fast = _verdict(decode, raw)
        assert wire.disagreements() == before, f"msgspec refused what pydantic accepts: {raw!r}"
        assert fast == reference, f"{raw!r}"
        verdict = reference
    return verdict


# ------------------------------------------------------------------------------------- (a) the generator


class Raw:
    """A JSON fragment written verbatim (what orjson cannot or will not write)."""

    def __init__(self, text: bytes) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Raw({self.text[:60]!r})"


def _json(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value).encode()  # any size: orjson refuses integers beyond 64 bits
    return orjson.dumps(value)


def render(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object from (key, value) pairs, in order, duplicates kept."""
    return b"{" + b",".join(orjson.dumps(k) + b":" + _json(v) for k, v in pairs) + b"}"


CONTROL = "".join(map(chr, range(0x20))) + "\x7f"
name_text = st.one_of(
    st.sampled_from(["a", "q-1", "é", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "", "a\n", "\na", "a\x7f",
                     "a\x00b", "\t", "\u00a0", "\u2028", "a\\b", "\U0001f600", "'\"", "a b"]),
    st.text(alphabet=st.sampled_from(string.ascii_letters + CONTROL + "é\u00a0\u200b-_ \\\"/"), max_size=10),
    st.text(max_size=6),
)
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "5", "true", "null"]), st.just([]), st.just({}), st.just(["a"]), st.just({"a": 1}),
    st.sampled_from([Raw(b"1e400"), Raw(b"-1e400"), Raw(b"1" + b"0" * 400), Raw(b"123456789012345678901234567890"),
                     Raw(b"18446744073709551616"), Raw(b"-9223372036854775809"), Raw(b"1E+0309"), Raw(b"1e-400"),
                     Raw(b'"\\ud800"'), Raw(b'"\\udc00x"'), Raw(b'"\xff"'), Raw(b'"\xed\xa0\x80"'), Raw(b'"\xc3\xa9"'),
                     Raw(b'"\\u0000"'), Raw(b'"\\n"'), Raw(b"[" * 1030 + b"]" * 1030), Raw(b"[" * 600 + b"]" * 600),
                     Raw(b'{"a":' * 1025 + b"1" + b"}" * 1025), Raw(b"-0"), Raw(b"0.0e0"), Raw(b'"\x7f"')]),
)
seconds = st.one_of(
    st.sampled_from([0, 0.0, -0.0, 1, 86400, 86400.0, 86400.00000000001, 86400.0000001, 86401, -1, -1e-300,
                     5e-324, True, False, "5", None, 2**63, 2**64, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-5, 100_000),
    st.sampled_from([Raw(b"1e400"), Raw(b"86400.000000000000000001"), Raw(b"8.64e4"), Raw(b"8.64E+4"), Raw(b"-0.0"),
                     Raw(b"1" + b"0" * 400), Raw(b"0." + b"0" * 400 + b"1")]),
)
ints = st.one_of(
    st.integers(-2, 12),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, True, False, 5.0, "5", None]),
    st.sampled_from([Raw(b"1e1"), Raw(b"5.0"), Raw(b"-0"), Raw(b"1" + b"0" * 40)]),
)
bools = st.sampled_from([True, False, 1, 0, "true", None, 1.0])


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    """Timestamps of every odd shape (and some that are no string at all)."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from([None, 0, 1795413602651000, 1.5, [], {}, True]))
    if draw(st.integers(0, 7)) == 0:
        return draw(st.sampled_from([
            "1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "1969-12-31T23:59:59.9999999Z",
            "1970-01-01T01:00:00+01:00", "1970-01-01T00:59:59.999999+01:00", "1969-12-31T23:00:00-01:00",
            "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59:59.999999999999Z", "9999-12-31T23:59:59-00:01",
            "9999-12-31T00:00:00-23:59", "10000-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "0000-01-01T00:00:00Z",
            "2024-02-29T12:00:00Z", "2023-02-29T12:00:00Z", "2100-02-29T00:00:00Z", "2000-02-29T00:00:00Z",
            "2026-11-23T06:00:02.651Z\n", "2026-11-23T06:00:02.651Z ", " 2026-11-23T06:00:02.651Z",
            "2026-11-23T06:00:02", "2026-11-23T06:00:02.Z", "2026-11-23T06:00Z", "2026-11-23",
            "２０２６-11-23T06:00:02Z", "2026-11-23T06:00:0٢Z", "2026-11-23T06:00:02.٢Z", "2026-11-23T06:00:02.²Z",
            "2026-11-23T06:00:02+0100", "2026-11-23T06:00:02+01", "2026-11-23T06:00:02+01:00:00",
            "2026-11-23T06:00:02+00:60", "2026-11-23T06:00:02+23:59", "2026-11-23T06:00:02+24:00",
            "2026-11-23T06:00:02-00:00", "2026-11-23T24:00:00Z", "2026-11-23T23:60:00Z", "2026-11-23T23:59:60Z",
            "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-04-31T00:00:00Z", "", "Z",
            "2026-11-23T06:00:02.651ZZ", "2026-11-23T06:00:02.651+02:00Z", "2026-11-23T06:00:02.+02:00",
        ]))
    year = draw(st.one_of(st.sampled_from(["0000", "0001", "1969", "1970", "2000", "2024", "2026", "2100", "9999",
                                           "10000", "999", "+2026"]),
                          st.integers(0, 9999).map(lambda y: f"{y:04d}")))
    month = draw(st.one_of(st.integers(0, 13).map(lambda v: f"{v:02d}"), st.just("1")))
    day = draw(st.one_of(st.integers(0, 32).map(lambda v: f"{v:02d}"), st.sampled_from(["28", "29", "30", "31"])))
    hour = draw(st.one_of(st.integers(0, 25).map(lambda v: f"{v:02d}"), st.sampled_from(["00", "23", "24"])))
    minute = draw(st.one_of(st.integers(0, 61).map(lambda v: f"{v:02d}"), st.sampled_from(["00", "59", "60"])))
    second = draw(st.one_of(st.integers(0, 61).map(lambda v: f"{v:02d}"), st.sampled_from(["00", "59", "60"])))
    sep = draw(st.sampled_from(["T", "T", "T", "t", " ", "_", ""]))
    digits = draw(st.integers(0, 30))
    fraction = draw(st.sampled_from(["", "", "."])) or ("." + draw(st.text(alphabet="0123456789", min_size=digits,
                                                                               max_size=digits)) if digits else "")
    offset = draw(st.one_of(
        st.sampled_from(["Z", "Z", "z", "", "+00:00", "-00:00", "+01:00", "-23:59", "+23:59", "+24:00", "+00:60",
                         "+05:99", "+0100", "+01", "-1:00"]),
        st.tuples(st.sampled_from("+-"), st.integers(0, 25), st.integers(0, 99)).map(
            lambda t: f"{t[0]}{t[1]:02d}:{t[2]:02d}"),
    ))
    return f"{year}-{month}-{day}{sep}{hour}:{minute}:{second}{fraction}{offset}"


VALID: dict[str, list[tuple[str, Any]]] = {
    "contact.queued": [("channel", "voice"), ("queue", "billing"), ("reason", "card"), ("priority", 2)],
    "contact.answered": [("channel", "chat"), ("queue", "billing"), ("agent_id", "ag-1"), ("team", "t")],
    "contact.abandoned": [("channel", "email"), ("queue", "billing")],
    "contact.ended": [("channel", "sms"), ("queue", "billing"), ("agent_id", "ag-1"), ("talk_seconds", 118.267),
                      ("hold_seconds", 0), ("wrap_seconds", 17.5), ("resolved", True), ("transferred", False),
                      ("disposition", "ok")],
    "survey.response": [("nps", 9), ("csat", 4), ("comment", "fine")],
    "survey.followed_up": [("survey_event_id", "s-1"), ("agent_id", "ag-1")],
}
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": name_text, "contact_id": name_text, "customer_id": name_text, "agent_id": name_text,
    "survey_event_id": name_text,
    "queue": name_text, "reason": st.one_of(st.none(), name_text), "team": st.one_of(st.none(), name_text),
    "disposition": st.one_of(st.none(), name_text), "comment": st.one_of(st.none(), name_text),
    "channel": st.sampled_from(["voice", "chat", "email", "sms", "social", "app", "Voice", "", None, 5]),
    "priority": ints, "nps": ints, "csat": ints,
    "talk_seconds": seconds, "hold_seconds": seconds, "wrap_seconds": seconds,
    "resolved": bools, "transferred": bools, "ts": timestamps(),
    "type": st.sampled_from([*VALID, "contact.transferred", "survey.followed_up ", "agent.state", "", None, 5,
                             "Contact.Queued"]),
}
EXTRA_KEYS = st.sampled_from(["x", "tenant", "ts_us", "ts_text", "TYPE", "_sim_invalid", "agent_id", "nps", "é",
                              "survey_event_id"])


@st.composite
def messages(draw: st.DrawFn) -> bytes | str:
    """A message near the contract: a valid event of a random type, then a few hostile edits."""
    kind = draw(st.sampled_from(list(VALID)))
    pairs: list[tuple[str, Any]] = [("event_id", "e-1"), ("type", kind), ("ts", "2026-11-23T06:00:02.651Z"),
                                    ("contact_id", "c-1"), ("customer_id", "u-1"), *VALID[kind]]
    if draw(st.booleans()):
        pairs = draw(st.permutations(pairs))
    for _ in range(draw(st.integers(0, 4))):
        edit = draw(st.sampled_from(["set", "set", "set", "ts", "drop", "extra", "dup", "null"]))
        index = draw(st.integers(0, len(pairs) - 1)) if pairs else 0
        if edit == "ts":
            pairs = [(k, draw(timestamps()) if k == "ts" else v) for k, v in pairs]
        elif edit == "set" and pairs:
            key = pairs[index][0]
            pairs[index] = (key, draw(VALUES.get(key, junk)))
        elif edit == "drop" and pairs:
            del pairs[index]
        elif edit == "extra":
            pairs.insert(index, (draw(EXTRA_KEYS), draw(st.one_of(junk, name_text))))
        elif edit == "dup" and pairs:
            key = pairs[index][0]
            pairs.insert(draw(st.integers(0, len(pairs))), (key, draw(st.one_of(VALUES.get(key, junk), junk))))
        elif edit == "null" and pairs:
            pairs[index] = (pairs[index][0], None)
    raw = render(pairs)
    shape = draw(st.integers(0, 24))
    if shape == 0:
        try:
            return raw.decode("utf-8", "surrogatepass")  # str input (possibly with a lone surrogate)
        except UnicodeDecodeError:  # a junk value made bytes that are no text at all: they stay bytes
            return raw
    if shape == 1:
        return draw(st.sampled_from([b" \n" + raw + b"\n", b"\xef\xbb\xbf" + raw, raw + b"x", raw[:-1], b"[" + raw + b"]",
                                     b"null", b"", b"42", raw.replace(b"}", b",}", 1)]))
    return raw


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(messages())
def test_msgspec_and_pydantic_agree_on_hostile_messages(raw: bytes | str) -> None:
    assert_agree(raw)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timestamps())
def test_fast_timestamps_agree_with_the_reference(text: Any) -> None:
    """``ts_to_us`` (direct, not through an event) gives the reference's instant or refuses as it does."""
    if not isinstance(text, str):
        return
    try:
        expected: Any = to_us(parse_rfc3339(text))
    except ValueError:
        expected = ValueError
    try:
        got: Any = wire.ts_to_us(text)
    except ValueError:
        got = ValueError
    assert got == expected, text
    raw = render([("event_id", "e"), ("type", "contact.abandoned"), ("ts", text), ("contact_id", "c"),
                  ("customer_id", "u"), ("channel", "voice"), ("queue", "q")])
    assert_agree(raw)


def test_the_generator_reaches_both_verdicts_and_every_road() -> None:
    """A guard on the generator itself: it makes accepted and refused messages, the latter of many kinds."""
    seen: set[str] = set()
    accepted = 0

    # derandomize: the same 400 messages on every run, in CI (where Hypothesis derandomizes anyway) and here,
    # so this guard checks the generator, not luck (150 random ones once missed not_json under CI=true)
    @settings(max_examples=400, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(messages())
    def collect(raw: bytes | str) -> None:
        nonlocal accepted
        verdict = assert_agree(raw)
        if verdict[0] == "accepted":
            accepted += 1
        else:
            seen.add(verdict[1])

    collect()
    assert accepted >= 10
    assert {"not_json", "missing_field", "wrong_type", "out_of_range", "invalid_timestamp"} <= seen


# --------------------------------------------------------------------------- hand-written disagreement traps


BASE_ENDED = [("event_id", "e-1"), ("type", "contact.ended"), ("ts", "2026-11-23T06:00:02.651Z"), ("contact_id", "c-1"),
              ("customer_id", "u-1"), ("channel", "voice"), ("queue", "billing"), ("agent_id", "ag-1"),
              ("talk_seconds", 10), ("hold_seconds", 0.5), ("wrap_seconds", 0), ("resolved", True)]
BASE_QUEUED = [("event_id", "e-1"), ("type", "contact.queued"), ("ts", "2026-11-23T06:00:02.651Z"), ("contact_id", "c-1"),
               ("customer_id", "u-1"), ("channel", "voice"), ("queue", "billing")]


def _with(base: list[tuple[str, Any]], *extra: tuple[str, Any]) -> bytes:
    return render([*base, *extra])


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [
        # Python's re "$" matches before a final newline; pydantic-core's does not
        (_with(BASE_QUEUED, ("reason", "card\n")), "control_character"),
        (_with(BASE_QUEUED, ("queue", "billing\n")), "control_character"),
        # a skipped value is not checked by msgspec; orjson refuses the whole message
        (_with(BASE_QUEUED, ("x", Raw(b"1e400"))), "not_json"),
        (_with(BASE_QUEUED, ("x", Raw(b'"\xff"'))), "not_json"),
        (_with(BASE_QUEUED, ("x", Raw(b"[" * 1100 + b"]" * 1100))), "not_json"),
        (_with(BASE_QUEUED, ("x", Raw(b"1" + b"0" * 400))), "not_json"),
        # orjson reads an integer beyond int64/uint64 as a float, which strict pydantic refuses
        (_with(BASE_QUEUED, ("priority", 2**64)), "wrong_type"),
        (_with(BASE_QUEUED, ("priority", -(2**63) - 1)), "wrong_type"),
        (_with(BASE_QUEUED, ("priority", 2**64 - 1)), "accepted"),
        (_with(BASE_QUEUED, ("priority", -(2**63))), "accepted"),
        # duplicate keys: the last one counts (orjson), the first does not hide a bad last one
        (_with(BASE_QUEUED, ("queue", "")), "out_of_range"),
        (_with(BASE_QUEUED[:6] + [("queue", 5), ("queue", "ok")]), "accepted"),
        (_with(BASE_QUEUED, ("type", "contact.abandoned")), "accepted"),
        # an int for a float, a float or bool for an int, strings for numbers
        (_with(BASE_ENDED), "accepted"),
        (_with(BASE_ENDED, ("talk_seconds", 86400)), "accepted"),
        (_with(BASE_ENDED, ("talk_seconds", Raw(b"86400.000000000000001"))), "accepted"),
        (_with(BASE_ENDED, ("talk_seconds", 86400.0001)), "out_of_range"),
        (_with(BASE_ENDED, ("talk_seconds", -0.0)), "accepted"),
        (_with(BASE_ENDED, ("talk_seconds", -1)), "negative_duration"),
        (_with(BASE_ENDED, ("talk_seconds", Raw(b"1e400"))), "not_json"),
        (_with(BASE_ENDED, ("talk_seconds", True)), "wrong_type"),
        (_with(BASE_ENDED, ("resolved", 1)), "wrong_type"),
        (_with(BASE_ENDED, ("disposition", "a\x00b\n")), "accepted"),  # not a name: any text
        (_with(BASE_QUEUED, ("priority", 5.0)), "wrong_type"),
        # our own field names are not the contract's
        (_with(BASE_QUEUED, ("ts_us", "junk")), "accepted"),
        (_with(BASE_QUEUED, ("ts_text", 5)), "accepted"),
        # control characters only through escapes, or a raw DEL
        (_with(BASE_QUEUED, ("contact_id", "c\x7f")), "control_character"),
        (_with(BASE_QUEUED, ("contact_id", "c\x7f")).decode(), "control_character"),  # str input: the same scan
        # not printable (str.isprintable) but no control character: accepted, by msgspec (no disagreement)
        (_with(BASE_QUEUED[:6], ("queue", "a\u00a0b"), ("reason", Raw(b'"x\\/y"'))), "accepted"),
        # the length limits of names and ids (msgspec's Meta and pydantic's Field, side by side)
        (_with(BASE_QUEUED[:6], ("queue", "q" * 64)), "accepted"),
        (_with(BASE_QUEUED[:6], ("queue", "q" * 65)), "out_of_range"),
        (_with(BASE_QUEUED[1:], ("event_id", "e" * 128)), "accepted"),
        (_with(BASE_QUEUED[1:], ("event_id", "e" * 129)), "out_of_range"),
        (_with(BASE_QUEUED, ("contact_id", "c\\")), "accepted"),
        (_with(BASE_QUEUED, ("x", "\x01"), ("y", "\x7f")), "accepted"),
    ],
)
def test_known_traps(raw: bytes | str, verdict: str) -> None:
    result = assert_agree(raw)
    assert (result[0] if result[0] == "accepted" else result[1]) == verdict


def test_survey_rules() -> None:
    base = [("event_id", "e"), ("type", "survey.response"), ("ts", "2026-11-23T06:00:02Z"), ("contact_id", "c"),
            ("customer_id", "u")]
    assert assert_agree(render(base))[1] == "missing_field"  # neither nps nor csat
    assert assert_agree(render([*base, ("nps", None), ("csat", None)]))[1] == "missing_field"
    assert assert_agree(render([*base, ("nps", 0)]))[0] == "accepted"
    assert assert_agree(render([*base, ("csat", 6)]))[1] == "out_of_range"
    no_type = render([p for p in base if p[0] != "type"] + [("nps", 3)])
    with pytest.raises(InvalidEvent) as caught:
        wire.decode_survey_response(no_type)  # msgspec alone would accept a lone tagged Struct without its tag
    assert (caught.value.kind, caught.value.reason) == ("missing_field", "type: field required")
    assert_agree(no_type)
    event = wire.decode_survey_response(render([*base, ("csat", 5), ("comment", "merci\n")]))
    assert (event.type, event.nps, event.csat, event.comment) == ("survey.response", None, 5, "merci\n")


def test_the_safety_net_uses_pydantics_values() -> None:
    """Should msgspec ever refuse what pydantic accepts, the event is built from pydantic's values (and
    counted). No message reaches that road (the tests above assert it), so it is exercised directly."""
    raw = _with(BASE_ENDED, ("disposition", "ok"), ("x", 1))
    obj = orjson.loads(raw)
    before = wire.disagreements()
    event = wire._from_pydantic(parse_contact_event(raw), obj)
    assert wire.disagreements() == before + 1
    assert isinstance(event, wire.WireContactEnded)
    assert _values(event) == _values(parse_contact_event(raw))
    assert event.ts_text == "2026-11-23T06:00:02.651Z"


# --------------------------------------------------------------------------------- (b) literal timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:00.000001Z", 1),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1969-12-31T23:00:00-01:00", 0),
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999),
        ("9999-12-31T23:59:59.999999999999999999999999Z", 253_402_300_799_999_999),  # truncated, not rounded
        ("9999-12-31T00:00:00-23:59", 253_402_300_740_000_000),
        ("2024-02-29T12:00:00Z", 1_709_208_000_000_000),
        ("2026-11-23T06:00:02.651Z", 1_795_413_602_651_000),
        ("2026-11-23t06:00:02.651z", 1_795_413_602_651_000),
        ("2026-11-23 06:00:02.651+00:00", 1_795_413_602_651_000),
        ("2026-11-23T06:00:02.651-00:00", 1_795_413_602_651_000),
        ("2026-11-23T06:00:02.5+02:00", 1_795_406_402_500_000),
        ("2026-11-23T06:00:02+00:60", 1_795_410_002_000_000),  # fromisoformat reads +00:60 as +01:00
        ("2000-01-01T00:00:00.1234567-05:30", 946_704_600_123_456),
        ("2026-11-23T06:00:02.1234Z", 1_795_413_602_123_400),  # 4 and 5 digits: padded to microseconds
        ("2026-11-23T06:00:02.12345Z", 1_795_413_602_123_450),
        ("2026-03-29T01:30:00.1Z", 1_774_747_800_100_000),
        # the reference's regex reads Unicode digits (\\d), and digits beyond the sixth are cut before
        # fromisoformat sees them: a non-ASCII seventh digit is accepted
        ("2026-11-23T06:00:02.1234567\u0662Z", 1_795_413_602_123_456),
    ],
)
def test_timestamp_literals(text: str, expected: int) -> None:
    assert wire.ts_to_us(text) == expected
    assert to_us(parse_rfc3339(text)) == expected
    raw = render([("event_id", "e"), ("type", "contact.abandoned"), ("ts", text), ("contact_id", "c"),
                  ("customer_id", "u"), ("channel", "voice"), ("queue", "q")])
    assert wire.decode_contact_event(raw).ts_us == expected
    assert assert_agree(raw)[0] == "accepted"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("1969-12-31T23:59:59.999999Z", "invalid_timestamp"),  # range
        ("1970-01-01T00:59:59.999999+01:00", "invalid_timestamp"),  # range after the offset
        ("9999-12-31T23:59:59-00:01", "invalid_timestamp"),  # year 10000 in UTC
        ("10000-01-01T00:00:00Z", "invalid_timestamp"),
        ("0000-01-01T00:00:00Z", "invalid_timestamp"),
        ("2023-02-29T12:00:00Z", "invalid_timestamp"),
        ("2100-02-29T12:00:00Z", "invalid_timestamp"),
        ("2026-04-31T00:00:00Z", "invalid_timestamp"),
        ("2026-11-23T24:00:00Z", "invalid_timestamp"),
        ("2026-11-23T24:00:01Z", "invalid_timestamp"),  # also where fromisoformat reads T24:00:00 (Python > 3.11)
        ("2026-11-23T23:60:00Z", "invalid_timestamp"),
        ("2026-11-23T23:59:60Z", "invalid_timestamp"),  # no leap seconds in datetime
        ("2026-11-23T06:00:02+24:00", "invalid_timestamp"),
        ("2026-11-23T06:00:02+23:60", "invalid_timestamp"),  # = +24:00
        ("2026-11-23T06:00:02.Z", "invalid_timestamp"),
        ("2026-11-23T06:00:02.651Z\n", "invalid_timestamp"),
        ("2026-11-23T06:00:0\u0662Z", "invalid_timestamp"),  # an Arabic-Indic digit
        ("2026-11-23T06:00:02.\u00b2Z", "invalid_timestamp"),  # "²".isdigit() is True
        ("2026-11-23T06:00:02.\u0662Z", "invalid_timestamp"),  # int("\u0662") == 2: isdigit() is not enough
        ("2026-11-23T06:00:02+0100", "invalid_timestamp"),
        # shapes fromisoformat accepts and RFC 3339 does not: the hour cache must not learn them
        ("2026-W48-1T06:00:00Z", "invalid_timestamp"),  # an ISO week date, 13 characters like YYYY-MM-DDTHH
        ("2026-11-23T06:00:00+01.00", "invalid_timestamp"),  # fromisoformat reads it as +01:00
        ("2026-11-23T06:00:02x123Z", "invalid_timestamp"),  # a fraction needs its "."
        ("2026-11-23T06:00:02", "timestamp_without_offset"),
        ("2026-11-23T06:00:02.651", "timestamp_without_offset"),
    ],
)
def test_timestamp_refusals(text: str, kind: str) -> None:
    with pytest.raises(ValueError):
        wire.ts_to_us(text)
    raw = render([("event_id", "e"), ("type", "contact.abandoned"), ("ts", text), ("contact_id", "c"),
                  ("customer_id", "u"), ("channel", "voice"), ("queue", "q")])
    with pytest.raises(InvalidEvent) as caught:
        wire.decode_contact_event(raw)
    assert caught.value.kind == kind
    assert_agree(raw)


@pytest.mark.parametrize("head_offset", [("2026-11-23T06", "Z"), ("2024-02-29 23", "+05:30"), ("1970-01-01T00", "z"),
                                         ("9999-12-31T23", "-00:00"), ("1970-01-01t00", "+01:00")])
def test_every_minute_and_second_spelling(head_offset: tuple[str, str]) -> None:
    """All 10,000 two-digit ``:MM:SS`` (and a fraction) after one hour: fast parser == reference."""
    head, offset = head_offset
    for minute in range(100):
        for second in range(100):
            text = f"{head}:{minute:02d}:{second:02d}{'.5' if second % 3 else ''}{offset}"
            try:
                expected: Any = to_us(parse_rfc3339(text))
            except ValueError:
                expected = None
            try:
                got: Any = wire.ts_to_us(text)
            except ValueError:
                got = None
            assert got == expected, text


def test_the_hour_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer writing a new hour in every event cannot grow the caches without limit: they hold at most
    ``_CACHE_MAX`` hours, and the hour after a full cache finds it emptied (not one entry over the bound)."""
    monkeypatch.setattr(wire, "_z_cache", {})  # this test's own caches; the module's come back afterwards
    monkeypatch.setattr(wire, "_offset_cache", {})
    for offset in ("+01:00", "Z"):  # "Z" hours go into both caches
        wire._z_cache.clear()
        wire._offset_cache.clear()
        for hour in range(wire._CACHE_MAX + 50):
            day, h = divmod(hour, 24)
            text = f"{date.fromordinal(date(2000, 1, 1).toordinal() + day).isoformat()}T{h:02d}:00:00{offset}"
            assert wire.ts_to_us(text) == to_us(parse_rfc3339(text))
            size = hour % wire._CACHE_MAX + 1
            assert len(wire._offset_cache) == size, text
            assert len(wire._z_cache) == (size if offset == "Z" else 0), text


# ------------------------------------------------------------------- the fast roads (issue 9), spied on


class Roads:
    """Records every call of the slower timestamp roads of ``wire`` and passes it on to the real function.

    Why tests of the road and not only of the answer: every slow road gives the same answer (the reference
    is the last one), so a fast road broken into always missing passes every verdict test while the hot
    path quietly costs several times more (issue 9). The hour caches are this test's own, empty at start."""

    NAMES = ("_general_ts_to_us", "_head_seconds", "_reference_ts_to_us")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, str]] = []
        for name in self.NAMES:
            def spy(*args: str, _real: Callable[..., int | None] = getattr(wire, name), _name: str = name) -> Any:
                self.calls.append((_name, "".join(args)))
                return _real(*args)

            monkeypatch.setattr(wire, name, spy)
        monkeypatch.setattr(wire, "_z_cache", {})
        monkeypatch.setattr(wire, "_offset_cache", {})

    def take(self) -> list[tuple[str, str]]:
        """The calls since the last ``take``: (function name, its text arguments joined)."""
        calls, self.calls = self.calls, []
        return calls


def test_a_z_timestamp_in_a_known_hour_costs_only_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ts_to_us``'s fast road: the first ``Z`` timestamp of an hour learns the hour (one ``_head_seconds``,
    no reference); after it every ``:MM:SS`` 00..59 with no fraction or 1-3 digits, including the epoch
    itself, is read without any slower road, at the hand-computed microsecond."""
    roads = Roads(monkeypatch)
    base = 1_795_413_600_000_000  # 2026-11-23T06:00:00Z
    assert wire.ts_to_us("2026-11-23T06:00:00Z") == base
    assert roads.take() == [("_general_ts_to_us", "2026-11-23T06:00:00Z"), ("_head_seconds", "2026-11-23T06Z")]
    fractions = {"": 0, ".0": 0, ".5": 500_000, ".09": 90_000, ".65": 650_000, ".007": 7_000, ".651": 651_000,
                 ".999": 999_000}
    for minute in range(60):
        for second in range(60):
            for fraction, micros in fractions.items():
                text = f"2026-11-23T06:{minute:02d}:{second:02d}{fraction}Z"
                assert wire.ts_to_us(text) == base + (minute * 60 + second) * 1_000_000 + micros, text
    for width in (1, 2, 3):
        for n in range(10**width):
            text = f"2026-11-23T06:59:59.{n:0{width}d}Z"
            assert wire.ts_to_us(text) == base + 3599_000_000 + n * 10 ** (6 - width), text
    assert roads.take() == []
    assert wire.ts_to_us("1970-01-01T00:00:00Z") == 0
    roads.take()
    assert (wire.ts_to_us("1970-01-01T00:00:00Z"), wire.ts_to_us("1970-01-01T00:00:00.000Z")) == (0, 0)
    assert roads.take() == []  # the first valid instant is in range on the fast road too
    assert wire.ts_to_us("9999-12-31T23:00:00Z") == 253_402_297_200_000_000
    roads.take()
    assert wire.ts_to_us("9999-12-31T23:59:59.999Z") == 253_402_300_799_999_000
    assert roads.take() == []
    # the hour before the epoch is learned too (the range applies to the whole instant); on the fast road
    # an instant in it is handed on, and the reference refuses it
    late = "1969-12-31T23:59:59.999Z"
    with pytest.raises(PydanticCustomError, match=re.escape(f"timestamp outside 1970-01-01..9999-12-31 UTC: {late!r}")):
        wire.ts_to_us(late)
    assert roads.take() == [("_general_ts_to_us", late), ("_head_seconds", "1969-12-31T23Z"), ("_reference_ts_to_us", late)]
    with pytest.raises(PydanticCustomError, match=re.escape(f"timestamp outside 1970-01-01..9999-12-31 UTC: {late!r}")):
        wire.ts_to_us(late)
    assert roads.take() == [("_general_ts_to_us", late), ("_reference_ts_to_us", late)]


@pytest.mark.parametrize(
    ("text", "expected", "hour"),
    [
        ("2026-11-23T06:00:02.5+02:00", 1_795_406_402_500_000, "2026-11-23T06+02:00"),
        ("2026-11-23T06:00:02.5-05:30", 1_795_433_402_500_000, "2026-11-23T06-05:30"),
        ("2026-11-23 06:00:02.123456+00:00", 1_795_413_602_123_456, "2026-11-23 06+00:00"),
        ("2026-11-23t06:00:02.651z", 1_795_413_602_651_000, "2026-11-23t06z"),
        ("2026-11-23T06:00:02.1234Z", 1_795_413_602_123_400, "2026-11-23T06Z"),  # Z, but 4 digits
        ("2026-11-23T06:00:02.1234567Z", 1_795_413_602_123_456, "2026-11-23T06Z"),  # truncated
        ("1970-01-01T01:00:00+01:00", 0, "1970-01-01T01+01:00"),  # the first valid instant
        ("9999-12-31T23:59:59.999999Z", 253_402_300_799_999_999, "9999-12-31T23Z"),  # the last one
    ],
)
def test_other_offsets_and_long_fractions_never_reach_the_reference(
    monkeypatch: pytest.MonkeyPatch, text: str, expected: int, hour: str
) -> None:
    """Any ``+hh:mm``, a lower-case ``z``, 4 to 7 fractional digits and the two ends of the valid range are
    read by ``_general_ts_to_us`` alone: the first time with one ``_head_seconds`` for the hour, the second
    time from the cache. (The reference is only for the odd and the invalid.)"""
    roads = Roads(monkeypatch)
    assert wire.ts_to_us(text) == expected
    assert roads.take() == [("_general_ts_to_us", text), ("_head_seconds", hour)]
    assert wire.ts_to_us(text) == expected
    assert roads.take() == [("_general_ts_to_us", text)]


class _Orjson:
    """Stands in for ``orjson`` inside ``wire`` only, recording what road 2 parses (and parsing it)."""

    JSONDecodeError = orjson.JSONDecodeError

    def __init__(self) -> None:
        self.parsed: list[bytes | str] = []

    def loads(self, raw: bytes | str) -> Any:
        self.parsed.append(raw)
        return orjson.loads(raw)


def test_contract_events_are_decoded_by_msgspec_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Road 1 of ``_decode``: an event of the contract with only its own fields, as bytes or text, with or
    without an escape outside the names, on its topic or through ``decode_any_event``, never reaches orjson
    (road 2, about 5x slower); a field of the producer's own does, and is accepted there."""
    spy = _Orjson()
    monkeypatch.setattr(wire, "orjson", spy)
    ended, queued = _with(BASE_ENDED), _with(BASE_QUEUED)
    survey = render([("event_id", "e"), ("type", "survey.response"), ("ts", "2026-11-23T06:00:02Z"),
                     ("contact_id", "c"), ("customer_id", "u"), ("nps", 9)])
    escaped = _with(BASE_ENDED, ("disposition", Raw(b'"line\\nbreak \\u00e9"')))  # free text: no check
    assert wire.decode_contact_event(ended).talk_seconds == 10.0
    assert wire.decode_contact_event(queued.decode()).queue == "billing"
    assert wire.decode_any_event(ended).type == "contact.ended"
    assert wire.decode_survey_response(survey).nps == 9
    assert wire.decode_any_event(survey).nps == 9
    assert wire.decode_contact_event(escaped).disposition == "line\nbreak \u00e9"
    assert spy.parsed == []
    own_field = _with(BASE_QUEUED, ("tenant", "t1"))
    assert wire.decode_contact_event(own_field).queue == "billing"
    assert spy.parsed == [own_field]


def test_the_first_disagreement_is_logged_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A disagreement is a bug to report, not to flood the log with: the first one logs a warning, later ones
    only count. (No message reaches this road; it is called directly, as in the test above.)"""
    raw = _with(BASE_ENDED, ("x", 1))
    model, obj = parse_contact_event(raw), orjson.loads(raw)
    monkeypatch.setattr(wire, "_disagreements", 0)  # as in a fresh process; restored afterwards
    with caplog.at_level(logging.WARNING, logger="cxpulse.models.wire"):
        wire._from_pydantic(model, obj)
        wire._from_pydantic(model, obj)
        wire._from_pydantic(model, obj)
    assert wire.disagreements() == 3
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("cxpulse.models.wire", "msgspec refused an event pydantic accepts (type 'contact.ended'); using pydantic's values")
    ]


def test_a_fresh_process_has_no_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    """``disagreements()`` counts from 0: the module as first imported (a second copy, loaded from the same
    file, so this test process's count does not matter) reports none."""
    name = "cxpulse.models._wire_fresh_copy"
    spec = importlib.util.spec_from_file_location(name, wire.__file__)
    assert spec is not None and spec.loader is not None
    fresh = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, fresh)  # msgspec resolves the Structs' annotations through it
    spec.loader.exec_module(fresh)
    assert fresh.disagreements() == 0


# ------------------------------------------------------------------------------- (c) real event streams


def _simulated(hours: float, invalid_rate: float) -> list[tuple[bool, bytes]]:
    sim = Simulation(load_centre(), start_ms=START_MS, seed=3, invalid_rate=invalid_rate)
    return [(r.topic == SURVEY_TOPIC, encode(r)) for r in sim.events(START_MS + int(hours * 3_600_000))]


def _agree_on_topic(is_survey: bool, raw: bytes) -> str:
    parse, decode = (parse_survey_response, wire.decode_survey_response) if is_survey else (
        parse_contact_event, wire.decode_contact_event)
    before = wire.disagreements()
    reference, fast = _verdict(parse, raw), _verdict(decode, raw)
    assert wire.disagreements() == before, raw
    assert fast == reference, raw
    return reference[0] if reference[0] == "accepted" else reference[1]


def test_simulator_output_agrees() -> None:
    """Two hours of the shipped centre (seed 3): every event accepted by both, with equal values."""
    records = _simulated(2, 0.0)
    assert len(records) > 2000
    assert {_agree_on_topic(*record) for record in records} == {"accepted"}


def test_simulator_invalid_events_agree() -> None:
    """The simulator's deliberately invalid events (every schema kind) are judged alike."""
    verdicts = [_agree_on_topic(*record) for record in _simulated(2, 0.2)]
    assert {"accepted", "not_json", "missing_field", "wrong_type", "out_of_range", "unknown_type",
            "timestamp_without_offset", "negative_duration"} <= set(verdicts)


def test_anonymous_bank_day_agrees() -> None:
    """The real day of the Anonymous Bank (offsets +02:00, whole seconds) through the importer."""
    events = convert_rows(read_csv(CSV_PATH), date(1999, 1, 4))
    assert len(events) > 5000
    for event in events:
        assert _agree_on_topic(False, orjson.dumps(event)) == "accepted"


def test_follow_up_rules() -> None:
    """``survey.followed_up`` (contract v2): its survey id is required, an id (1..128, no control character);
    ``agent_id`` may be null or left out; it is a survey-topic event, refused on the contact topic."""
    base = [("event_id", "f"), ("type", "survey.followed_up"), ("ts", "2026-11-23T08:00:00Z"), ("contact_id", "c"),
            ("customer_id", "u")]
    assert assert_agree(render(base))[1] == "missing_field"  # no survey_event_id
    assert assert_agree(render([*base, ("survey_event_id", "s1")]))[0] == "accepted"
    assert assert_agree(render([*base, ("survey_event_id", "s1"), ("agent_id", None)]))[0] == "accepted"
    assert assert_agree(render([*base, ("survey_event_id", "")]))[1] == "out_of_range"
    assert assert_agree(render([*base, ("survey_event_id", "s" * 129)]))[1] == "out_of_range"
    assert assert_agree(render([*base, ("survey_event_id", "s\n1")]))[1] == "control_character"
    assert assert_agree(render([*base, ("survey_event_id", 5)]))[1] == "wrong_type"
    assert assert_agree(render([*base, ("survey_event_id", "s1"), ("agent_id", "a\x01")]))[1] == "control_character"
    event = wire.decode_survey_response(render([*base, ("survey_event_id", "s1"), ("agent_id", "ag-7")]))
    assert (event.type, event.survey_event_id, event.agent_id, event.ts_us) == (
        "survey.followed_up", "s1", "ag-7", to_us(datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)))
    with pytest.raises(InvalidEvent) as caught:
        wire.decode_contact_event(render([*base, ("survey_event_id", "s1")]))
    assert caught.value.kind == "unknown_type"


def test_channel_app_is_valid() -> None:
    """Contract v2 adds the channel ``app`` (in-app messaging) to every contact event."""
    raw = render([("event_id", "e"), ("type", "contact.queued"), ("ts", "2026-11-23T06:00:02Z"), ("contact_id", "c"),
                  ("customer_id", "u"), ("channel", "app"), ("queue", "care")])
    assert assert_agree(raw)[0] == "accepted"
    assert wire.decode_contact_event(raw).channel == "app"

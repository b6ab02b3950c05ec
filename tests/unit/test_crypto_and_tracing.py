"""Pseudonyms and field encryption (shared/crypto.py); W3C trace context (shared/tracing.py)."""

from __future__ import annotations

import base64
import re

import pytest
from cryptography.exceptions import InvalidTag

from shared.crypto import derive_key, new_data_key, pseudonymise, seal, unseal
from shared.tracing import (
    TraceContext,
    bound,
    clean_correlation_id,
    current_correlation_id,
    current_trace,
    from_headers,
    new_trace,
    outgoing_headers,
    parse_traceparent,
)

KEY = "deployment-pseudonym-key-at-least-32-chars"
PSEUDONYM = re.compile(r"^p1_[0-9a-f]{32}$")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"


# -- pseudonyms --------------------------------------------------------------------------------


def test_a_pseudonym_is_p1_and_32_hex() -> None:
    assert PSEUDONYM.match(pseudonymise(KEY, "client-0042"))


def test_the_same_client_gets_the_same_pseudonym() -> None:
    assert pseudonymise(KEY, "client-0042") == pseudonymise(KEY, "client-0042")


def test_different_clients_get_different_pseudonyms() -> None:
    assert pseudonymise(KEY, "client-0042") != pseudonymise(KEY, "client-0043")


def test_a_pseudonym_depends_on_the_deployment_key() -> None:
    other_key = "another-deployment-key-of-32-chars!!"

    assert pseudonymise(KEY, "client-0042") != pseudonymise(other_key, "client-0042")


def test_surrounding_whitespace_does_not_change_the_pseudonym() -> None:
    assert pseudonymise(KEY, "  client-0042\n") == pseudonymise(KEY, "client-0042")


@pytest.mark.parametrize("reference", ["Jane Doe", "client-0042", "0123456789abcdef", "deadbeef"])
def test_a_pseudonym_does_not_contain_the_reference(reference: str) -> None:
    pseudonym = pseudonymise(KEY, reference)

    assert reference.lower() not in pseudonym.removeprefix("p1_")
    assert PSEUDONYM.match(pseudonym)


# -- sealing -----------------------------------------------------------------------------------


def test_sealed_text_unseals_to_the_original() -> None:
    key = new_data_key()
    note = "Client talked about a difficult week — façade of calm."

    assert unseal(key, seal(key, note, "episode:ep-1"), "episode:ep-1") == note


def test_sealed_text_does_not_contain_the_plaintext() -> None:
    key = new_data_key()
    token = seal(key, "divorce", "episode:ep-1")

    assert "divorce" not in token
    assert b"divorce" not in base64.urlsafe_b64decode(token)


def test_sealing_the_same_text_twice_gives_different_tokens() -> None:
    key = new_data_key()

    assert seal(key, "same note") != seal(key, "same note")


def test_a_tampered_token_does_not_unseal() -> None:
    key = new_data_key()
    raw = bytearray(base64.urlsafe_b64decode(seal(key, "a note")))
    raw[-1] ^= 0x01
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode()

    with pytest.raises(InvalidTag):
        unseal(key, tampered)


def test_a_token_does_not_unseal_with_other_associated_data() -> None:
    key = new_data_key()
    token = seal(key, "a note", "episode:ep-1")

    with pytest.raises(InvalidTag):
        unseal(key, token, "episode:ep-2")


def test_a_token_does_not_unseal_with_another_key() -> None:
    token = seal(new_data_key(), "a note")

    with pytest.raises(InvalidTag):
        unseal(new_data_key(), token)


def test_derived_keys_are_256_bit_and_differ_by_purpose() -> None:
    webhook = derive_key(KEY, "notify-webhook-secret")
    notes = derive_key(KEY, "feedback-notes")

    assert len(webhook) == 32
    assert webhook != notes
    assert derive_key(KEY, "feedback-notes") == notes


# -- traceparent -------------------------------------------------------------------------------


def test_parse_traceparent_reads_a_valid_header() -> None:
    assert parse_traceparent(VALID) == TraceContext(TRACE_ID, PARENT_ID, "01")


def test_parse_traceparent_accepts_upper_case_hex_and_surrounding_space() -> None:
    assert parse_traceparent(f"  {VALID.upper()} ") == TraceContext(TRACE_ID, PARENT_ID, "01")


@pytest.mark.parametrize(
    "value",
    [
        f"00-{'0' * 32}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{'0' * 16}-01",
    ],
    ids=["zero-trace-id", "zero-parent-id"],
)
def test_parse_traceparent_rejects_all_zero_ids(value: str) -> None:
    assert parse_traceparent(value) is None


@pytest.mark.parametrize(
    "value",
    [
        f"0-{TRACE_ID}-{PARENT_ID}-01",
        f"000-{TRACE_ID}-{PARENT_ID}-01",
        f"0x-{TRACE_ID}-{PARENT_ID}-01",
        f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
        f"00-{TRACE_ID}-{PARENT_ID}0-01",
        f"00-{TRACE_ID}-{PARENT_ID}-1",
        f"00-{TRACE_ID}-{PARENT_ID}",
        f"00_{TRACE_ID}_{PARENT_ID}_01",
        f"00-{'g' * 32}-{PARENT_ID}-01",
    ],
)
def test_parse_traceparent_rejects_a_malformed_header(value: str) -> None:
    assert parse_traceparent(value) is None


@pytest.mark.parametrize("value", [None, "", "garbage", "\x00\x01", "00-" * 20])
def test_parse_traceparent_rejects_garbage(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_a_trace_header_round_trips() -> None:
    trace = new_trace()

    assert parse_traceparent(trace.header()) == trace


def test_a_child_span_keeps_the_trace_id_and_gets_a_new_parent_id() -> None:
    parent = TraceContext(TRACE_ID, PARENT_ID)

    child = parent.child()

    assert child.trace_id == TRACE_ID
    assert child.parent_id != PARENT_ID
    assert parse_traceparent(child.header()) == child


# -- from_headers ------------------------------------------------------------------------------


def test_from_headers_continues_an_incoming_trace() -> None:
    _, trace = from_headers({"traceparent": VALID})

    assert trace.trace_id == TRACE_ID
    assert trace.parent_id != PARENT_ID


def test_from_headers_starts_a_new_trace_without_a_valid_traceparent() -> None:
    _, trace = from_headers({"traceparent": "garbage"})

    assert trace.trace_id != TRACE_ID
    assert parse_traceparent(trace.header()) == trace


def test_from_headers_reads_the_kafka_correlation_header() -> None:
    correlation, _ = from_headers({"correlation_id": "corr-1"})

    assert correlation == "corr-1"


def test_from_headers_reads_the_http_correlation_header_in_any_case() -> None:
    correlation, _ = from_headers({"X-Correlation-Id": "corr-2"})

    assert correlation == "corr-2"


def test_from_headers_replaces_an_unsafe_correlation_id() -> None:
    correlation, _ = from_headers({"correlation_id": "evil\nlog line"})

    assert re.fullmatch(r"[0-9a-f]{32}", correlation)


@pytest.mark.parametrize(("length", "kept"), [(128, True), (129, False)])
def test_a_correlation_id_may_have_up_to_128_characters(length: int, kept: bool) -> None:
    value = "c" * length

    assert (clean_correlation_id(value) == value) is kept


def test_bound_ids_flow_into_outgoing_headers_and_are_unbound_afterwards() -> None:
    trace = TraceContext(TRACE_ID, PARENT_ID)

    with bound("corr-3", trace):
        inside = outgoing_headers()
        assert current_correlation_id() == "corr-3"
        assert current_trace() == trace

    assert inside["correlation_id"] == "corr-3"
    outgoing = parse_traceparent(inside["traceparent"])
    assert outgoing is not None and outgoing.trace_id == TRACE_ID
    assert current_correlation_id() != "corr-3"
    assert current_trace().trace_id != TRACE_ID

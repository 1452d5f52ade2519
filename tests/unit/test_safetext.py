"""Text from outside made safe: scrubbed before any cut, secret headers only, valid printable UTF-8."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from raypod.http import summarize_error_body
from raypod.jobdata import parse_json_object
from raypod.safetext import MASK, Scrubber, bounded_text, one_line, printable, valid_json, valid_text

TOKEN = "tok3n-" + "aB9xQ2mZ7kL4pW8rT1vY6nC3" * 4
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
#: A run of this many characters of the token, anywhere, is a leak.
PIECE = 8


def leaked_piece(text: str, secret: str = TOKEN) -> str | None:
    """A run of PIECE characters of ``secret`` found in ``text``, else None."""
    return next((secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1) if secret[i : i + PIECE] in text), None)


filler = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=600)


@settings(max_examples=300, deadline=None)
@given(before=filler, after=filler, cut=st.integers(0, 1500), server_cut=st.integers(0, 1500))
def test_a_token_echoed_anywhere_and_cut_anywhere_leaves_no_piece_of_it(
    before: str, after: str, cut: int, server_cut: int
) -> None:
    scrubber = Scrubber.of_headers(HEADERS)
    echoed = f"{before}Authorization: Bearer {TOKEN}{after}"
    # Cut by someone else first (a proxy's page, Ray's 4096-character message), then by raypod.
    for text in (echoed, echoed[:server_cut], echoed[server_cut:]):
        for shown in (
            scrubber.cut(text, cut),
            bounded_text(scrubber.scrub(text), cut),
            one_line(scrubber.scrub(text), max(cut, 4)),
            summarize_error_body(text, scrubber),
            summarize_error_body(json.dumps({"message": text}), scrubber),
        ):
            assert leaked_piece(shown) is None, shown


def test_a_token_spelled_by_json_escapes_is_scrubbed_in_the_summary() -> None:
    escaped = "".join(f"\\u{ord(ch):04x}" for ch in TOKEN)
    body = '{"message": "invalid token ' + escaped + '"}'
    assert leaked_piece(body) is None  # the raw body does not show it
    summary = summarize_error_body(body, Scrubber.of_headers(HEADERS))
    assert leaked_piece(summary) is None and summary == f"invalid token {MASK}"


def test_only_secret_header_values_are_scrubbed() -> None:
    scrubber = Scrubber.of_headers(
        {
            "Accept": "application/json",
            "Content-Type": "application/merge-patch+json",
            "User-Agent": "python-requests/2.34",
            "X-Team": "research-cluster-a",
            "Cookie": "session=abcdefgh12345678; theme=dark",
            "X-Ray-Authorization": "Bearer zyxwvuts98765432",
        }
    )
    message = scrubber.scrub(
        "answer is not JSON (content type application/json); merge-patch: application/merge-patch+json; "
        "agent python-requests/2.34"
    )
    assert "application/json" in message and "application/merge-patch+json" in message
    assert "python-requests/2.34" in message
    for secret in ("research-cluster-a", "abcdefgh12345678", "zyxwvuts98765432"):
        assert secret not in scrubber.scrub(f"echo {secret} echo"), secret


def test_a_lone_surrogate_becomes_valid_text() -> None:
    value = json.loads('{"message": "bad \\ud800 text", "\\udfff": ["\\ud83d\\ude00", "\\udc00"]}')
    valid = valid_json(value)
    json.dumps(valid, ensure_ascii=False).encode("utf-8")  # raises on a surrogate
    assert valid["message"] == "bad ? text" and valid["?"] == ["\U0001f600", "?"]
    assert valid_text("plain é") == "plain é"
    assert printable("a\x1b[31mb\ud800") == "a?[31mb?"
    assert one_line("\x07bell \ud800\n") == "?bell ?"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_printable_text_is_always_encodable(text: str) -> None:
    shown = printable(text)
    shown.encode("utf-8")
    assert all(ch.isprintable() for ch in shown)


def test_job_parameters_with_a_lone_surrogate_are_parsed_as_valid_text() -> None:
    parsed = parse_json_object('{"name": "caf\\ud800", "\\udc00": 1}', "jobdata.jobParameters")
    assert parsed == {"name": "caf?", "?": 1}

"""status.message for bad input: one problem as it is; several with their count and as many as fit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from raypod.errors import ConfigError
from raypod.outcome import Outcome, bad_input_message
from raypod.safetext import MAX_MESSAGE


def test_one_problem_reads_as_before() -> None:
    outcome = Outcome.bad_input(ConfigError.single("updateInterval", "expected a number of seconds, got 'x'"))
    assert outcome.message == "Bad input: updateInterval: expected a number of seconds, got 'x'"


def test_several_problems_are_counted_and_listed_while_they_fit() -> None:
    problems = [(f"key{n}", f"problem number {n} is rather long and wordy") for n in range(11)]
    message = Outcome.bad_input(ConfigError(problems)).message
    assert message.startswith("Bad input (11 problems): key0: problem number 0 is rather long and wordy; key1: ")
    assert message.endswith("; ...")
    assert len(message) <= MAX_MESSAGE


def test_problems_that_all_fit_are_all_listed_without_an_ellipsis() -> None:
    message = Outcome.bad_input(ConfigError([("a", "x"), ("b", "y"), ("c", "z")])).message
    assert message == "Bad input (3 problems): a: x; b: y; c: z"


def test_a_first_problem_longer_than_the_limit_is_cut_and_still_says_there_is_more() -> None:
    message = bad_input_message(["k: " + "z" * 400, "b: y"])
    assert message.startswith("Bad input (2 problems): k: zzz") and message.endswith("...; ...")
    assert len(message) == MAX_MESSAGE


@given(st.lists(st.text(min_size=1, max_size=200), min_size=2, max_size=30))
def test_the_message_is_one_bounded_line_naming_the_count(problems: list[str]) -> None:
    message = bad_input_message(problems)
    assert message.startswith(f"Bad input ({len(problems)} problems): ")
    assert len(message) <= MAX_MESSAGE
    assert message.isprintable()

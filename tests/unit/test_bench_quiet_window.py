"""When the benchmark takes the dashboard for idle between phases (bench/pods.py): a window under
the quiet rate, or two windows that agree on a rate a little over it (a head that idles higher);
never a rate still falling from a phase's aftermath."""

from __future__ import annotations

from bench.pods import QUIET_RATE, SETTLED_MAX, SETTLED_WITHIN, is_quiet


def test_a_window_under_the_quiet_rate_is_quiet_at_once() -> None:
    assert is_quiet(QUIET_RATE - 0.001, None)


def test_a_head_idling_a_little_over_the_rate_is_quiet_once_two_windows_agree() -> None:
    assert not is_quiet(0.055, None)
    assert is_quiet(0.055, 0.06)


def test_a_rate_still_falling_or_too_high_is_not_quiet() -> None:
    assert not is_quiet(0.055, 0.055 + SETTLED_WITHIN + 0.005)
    assert not is_quiet(SETTLED_MAX + 0.001, SETTLED_MAX + 0.001)
    assert not is_quiet(0.3, 0.3)

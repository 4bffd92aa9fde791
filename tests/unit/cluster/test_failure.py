"""Phi accrual failure detection (cluster/failure.py), driven by a stepped fake clock."""

from __future__ import annotations

import random

import pytest

from cluster.failure import PhiAccrualDetector

STEP_S = 0.05


def _steady(detector: PhiAccrualDetector, node: str, until_s: float, start_s: float = 0.0) -> float:
    now = start_s
    while now <= until_s:
        detector.heartbeat(node, now)
        now += 1.0
    return now - 1.0


def _time_to_convict(detector: PhiAccrualDetector, node: str, last_s: float) -> float:
    now = last_s
    while detector.is_available(node, now):
        now += STEP_S
        assert now - last_s < 60, "never convicted"
    return now - last_s


def test_silent_node_crosses_threshold_within_ten_seconds() -> None:
    detector = PhiAccrualDetector()
    last = _steady(detector, "n2", 120.0)
    waited = _time_to_convict(detector, "n2", last)
    assert 2.0 < waited < 10.0
    assert detector.phi("n2", last + waited) >= 8.0


def test_silent_node_convicted_soon_after_bootstrap() -> None:
    detector = PhiAccrualDetector()
    detector.heartbeat("n2", 0.0)
    detector.heartbeat("n2", 1.0)
    assert 2.0 < _time_to_convict(detector, "n2", 1.0) < 10.0


@pytest.mark.parametrize("seed", range(5))
def test_jittery_heartbeats_with_busy_pauses_do_not_flap(seed: int) -> None:
    """1 s gossip, +-300 ms jitter, and now and then a 2.5 s stall of a busy event loop."""
    rnd = random.Random(seed)
    detector = PhiAccrualDetector()
    now, beat, worst = 0.0, 0.0, 0.0
    for i in range(600):
        beat = i * 1.0 + rnd.uniform(-0.3, 0.3)
        if rnd.random() < 0.05:
            beat += 2.5                                   # this heartbeat is late by a stall
        beat = max(beat, now)
        while now < beat:
            worst = max(worst, detector.phi("n2", now))
            now += STEP_S
        detector.heartbeat("n2", now)
    assert worst < 8.0, f"phi reached {worst:.2f}"
    assert _time_to_convict(detector, "n2", now) < 12.0


def test_phi_grows_with_silence() -> None:
    detector = PhiAccrualDetector()
    last = _steady(detector, "n2", 30.0)
    values = [detector.phi("n2", last + k * 0.5) for k in range(30)]
    assert values == sorted(values)
    assert values[0] < 0.5


def test_unknown_node_is_available_and_remove_forgets() -> None:
    detector = PhiAccrualDetector()
    assert detector.phi("ghost", 100.0) == 0.0 and detector.is_available("ghost", 100.0)
    detector.heartbeat("n2", 0.0)
    assert not detector.is_available("n2", 1000.0)
    detector.remove("n2")
    assert detector.is_available("n2", 1000.0) and list(detector.known()) == []


def test_restart_gap_does_not_blunt_detection() -> None:
    """A node down for minutes, then back: the gap must not widen its distribution."""
    detector = PhiAccrualDetector()
    last = _steady(detector, "n2", 60.0)
    back = last + 300.0
    assert not detector.is_available("n2", back)
    last = _steady(detector, "n2", back + 30.0, start_s=back)
    assert detector.is_available("n2", last + 1.0)
    assert _time_to_convict(detector, "n2", last) < 10.0


def test_phi_extremes_are_finite_or_inf_never_errors() -> None:
    detector = PhiAccrualDetector(min_std_ms=1.0, acceptable_pause_ms=0.0)
    last = _steady(detector, "n2", 50.0)
    assert detector.phi("n2", last) == pytest.approx(0.0, abs=1e-6)
    assert detector.phi("n2", last + 1e6) > 8.0
    detector.heartbeat("n2", last - 5)                    # out of order: ignored
    assert detector.is_available("n2", last + 0.5)


def test_bad_parameters_rejected() -> None:
    with pytest.raises(ValueError):
        PhiAccrualDetector(threshold=0)
    with pytest.raises(ValueError):
        PhiAccrualDetector(min_std_ms=0)

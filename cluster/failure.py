"""Phi accrual failure detection: how suspicious is the silence of a node?

Instead of a boolean timeout, each node gets a suspicion level phi = -log10(P(a heartbeat
arrives later than now)), estimated from the recent heartbeat intervals assumed normally
distributed (Hayashibara et al., "The φ Accrual Failure Detector", 2004). The formulation is
Akka's `PhiAccrualFailureDetector`: a logistic approximation of the normal CDF, a minimum
standard deviation so a perfectly steady heartbeat does not make phi jump from 0 to infinity,
an acceptable pause added to the mean (a GC or a busy event loop is not a failure), and a
history bootstrapped from the expected interval so the first seconds are sane.

Pure: the caller passes `now_s` (monotonic seconds) in; no clock, no threads. "Heartbeat"
here means: we learned that the node's heartbeat counter advanced (membership.py, via gossip).
Not here: what to do about a suspect (the coordinator and gossiper decide).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

from cluster.types import NodeId

__all__ = ["PhiAccrualDetector"]


class _History:
    """A sliding window of heartbeat intervals (seconds) with running sums for O(1) stats."""

    __slots__ = ("intervals", "total", "squares", "last_s")

    def __init__(self, window: int, last_s: float) -> None:
        self.intervals: deque[float] = deque(maxlen=window)
        self.total = self.squares = 0.0
        self.last_s = last_s

    def add(self, interval: float) -> None:
        if len(self.intervals) == self.intervals.maxlen:
            old = self.intervals[0]
            self.total -= old
            self.squares -= old * old
        self.intervals.append(interval)
        self.total += interval
        self.squares += interval * interval

    def mean_std(self) -> tuple[float, float]:
        count = len(self.intervals)
        mean = self.total / count
        variance = max(0.0, self.squares / count - mean * mean)
        return mean, math.sqrt(variance)


class PhiAccrualDetector:
    """Per-node phi from heartbeat arrival times.

    A node never heard of has phi 0 (available): membership calls `heartbeat` the moment it
    learns of a node. Event-loop thread only.
    """

    def __init__(self, threshold: float = 8.0, window: int = 1000, min_std_ms: float = 200.0,
                 acceptable_pause_ms: float = 3000.0, expected_interval_ms: float = 1000.0) -> None:
        if threshold <= 0 or window < 2 or min_std_ms <= 0 or expected_interval_ms <= 0:
            raise ValueError("threshold, min_std_ms and expected_interval_ms must be > 0, "
                             "window >= 2")
        self.threshold = threshold
        self.window = window
        self.min_std_s = min_std_ms / 1000
        self.acceptable_pause_s = acceptable_pause_ms / 1000
        self.expected_interval_s = expected_interval_ms / 1000
        self._histories: dict[NodeId, _History] = {}

    def heartbeat(self, node: NodeId, now_s: float) -> None:
        """Record that `node` showed a sign of life at `now_s`."""
        history = self._histories.get(node)
        if history is None:
            history = self._histories[node] = _History(self.window, now_s)
            # Bootstrap (Akka): two intervals around the expected one, std = expected / 4.
            expected = self.expected_interval_s
            history.add(expected - expected / 4)
            history.add(expected + expected / 4)
            return
        interval = now_s - history.last_s
        if interval < 0:
            return                                   # out of order: ignore, keep the later one
        # A gap long enough to have convicted the node (it was down, or restarted) says
        # nothing about its heartbeat rhythm: do not let it widen the distribution.
        if self._phi(history, now_s) < self.threshold:
            history.add(interval)
        history.last_s = now_s

    def phi(self, node: NodeId, now_s: float) -> float:
        """Return the suspicion level of `node` at `now_s` (0.0 for an unknown node)."""
        history = self._histories.get(node)
        return 0.0 if history is None else self._phi(history, now_s)

    def _phi(self, history: _History, now_s: float) -> float:
        mean, std = history.mean_std()
        mean += self.acceptable_pause_s
        std = max(std, self.min_std_s)
        elapsed = now_s - history.last_s
        y = (elapsed - mean) / std
        # Logistic approximation of the normal CDF (Akka): e = P(later) / P(earlier).
        exponent = -y * (1.5976 + 0.070566 * y * y)
        if exponent > 700:                           # math.exp overflow: deep in "not yet"
            return 0.0
        e = math.exp(exponent)
        if elapsed > mean:
            return -math.log10(e / (1.0 + e)) if e > 0 else math.inf
        return -math.log10(1.0 - 1.0 / (1.0 + e))

    def is_available(self, node: NodeId, now_s: float) -> bool:
        """Return True while `node`'s phi is below the threshold."""
        return self.phi(node, now_s) < self.threshold

    def remove(self, node: NodeId) -> None:
        """Forget `node` (removed from the cluster, or restarted with a new incarnation)."""
        self._histories.pop(node, None)

    def known(self) -> Iterable[NodeId]:
        """Return the nodes with a heartbeat history."""
        return tuple(self._histories)

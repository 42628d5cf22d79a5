"""Resync speed over a sliding window, and the time left at that speed.

DRBD reports the speed over its last few "sync marks" rather than since the start, so a
throttled or stalled resync shows its current speed, not a stale average; same here.
"""

from __future__ import annotations

from collections import deque

DEFAULT_WINDOW = 10.0
# A resync starts with a token-bucket burst: a rate over the first few milliseconds would
# be wildly high, so none is reported before this much has been observed.
MIN_SPAN = 1.0


class RateWindow:
    """(time, bytes done) samples; the rate is measured from the oldest sample that is
    still inside the window up to *now*, so a stall pulls the rate towards zero."""

    def __init__(
        self, t0: float, done0: int = 0, window: float = DEFAULT_WINDOW, min_span: float = MIN_SPAN
    ) -> None:
        if window <= 0 or not 0 <= min_span <= window:
            raise ValueError(
                f"window {window!r}, min_span {min_span!r}: need 0 <= min_span <= window"
            )
        self.window = window
        self.min_span = min_span
        self._samples: deque[tuple[float, int]] = deque([(t0, done0)])

    def add(self, t: float, done: int) -> None:
        self._samples.append((t, done))
        self._prune(t)

    def _prune(self, now: float) -> None:
        # Keep one sample at or before the window start as the base of the measurement.
        s = self._samples
        while len(s) > 1 and s[1][0] <= now - self.window:
            s.popleft()

    def rate(self, now: float) -> float | None:
        """Bytes per second, or None while less than ``min_span`` has been observed."""
        self._prune(now)
        base_t, base_done = self._samples[0]
        last_done = self._samples[-1][1]
        elapsed = now - base_t
        if elapsed < max(self.min_span, 1e-3):
            return None
        return max(0.0, (last_done - base_done) / elapsed)

    def eta(self, now: float, remaining: int) -> float | None:
        """Seconds until *remaining* bytes are done at the current rate (None: unknown)."""
        if remaining <= 0:
            return 0.0
        r = self.rate(now)
        if not r:
            return None
        return remaining / r

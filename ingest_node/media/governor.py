"""Speed against real time, and when to shed or restore a rendition.

A live pipeline that encodes slower than real time falls further behind every second, so its viewers
stall. Speed is measured as media seconds produced per second of *busy* time (wall time minus the time
spent waiting for the publisher's next packet): a live pipeline with headroom shows a speed above 1
even though its input only arrives at 1x, and one that has fallen behind shows its true rate, since it
never waits. Over each window the governor says: shed the most expensive rendition (speed below
`shed_below`), restore the cheapest shed one when the predicted speed with it stays above
`restore_margin`, or hold. Costs are pixels per second plus a fixed share for decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Decision = Literal["shed", "restore", "hold"]


@dataclass
class LoadGovernor:
    """Hysteresis over windows of media time: one change per window at most, and after a change the
    next window is only observed (its numbers mix both ladders)."""

    window_seconds: float = 6.0
    shed_below: float = 0.95
    restore_margin: float = 1.25
    decode_share: float = 0.35  # decoding the source costs about this share of one source-size encode
    enabled: bool = True

    def __post_init__(self) -> None:
        self._media = 0.0
        self._busy = 0.0
        self._settle = 0
        self.last_speed: float | None = None

    def observe(self, media_seconds: float, busy_seconds: float) -> float | None:
        """Add progress; returns the window's speed when a window completed, else None."""
        self._media += media_seconds
        self._busy += busy_seconds
        if self._media < self.window_seconds:
            return None
        speed = self._media / self._busy if self._busy > 0 else float("inf")
        self._media = self._busy = 0.0
        self.last_speed = speed
        return speed

    def decide(
        self, speed: float, active_cost: float, source_cost: float, restore_cost: float | None
    ) -> Decision:
        """Shed when behind, restore when the prediction with the shed rendition back still keeps up."""
        if not self.enabled:
            return "hold"
        if self._settle > 0:
            self._settle -= 1
            return "hold"
        if speed < self.shed_below and active_cost > 0:
            self._settle = 1
            return "shed"
        if restore_cost is not None:
            base = active_cost + self.decode_share * source_cost
            predicted = speed * base / (base + restore_cost) if base > 0 else speed
            if predicted >= self.restore_margin:
                self._settle = 1
                return "restore"
        return "hold"

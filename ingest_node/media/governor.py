"""Speed against real time, and when to shed or restore a rendition.

A live pipeline that encodes slower than real time falls further behind every second, so its viewers
stall. Speed is measured as media seconds produced per second of *busy* time (wall time minus the time
spent waiting for the publisher's next packet): a live pipeline with headroom shows a speed above 1
even though its input only arrives at 1x, and one that has fallen behind shows its true rate, since it
never waits. Over each window the governor says, in this order of preference:

- behind (speed below `shed_below`): move the encoders to a faster preset while one exists
  (`faster`: x264 veryfast -> superfast -> ultrafast costs quality, not a rendition), and only then
  shed the most expensive rendition (`shed`);
- headroom (predicted speed with the change still above `restore_margin`): restore the last shed
  rendition first (`restore`), then step the presets back towards the ladder's own (`slower`), the
  reverse of how they were given up;
- otherwise `hold`.

Costs are pixels per second times the preset's relative cost (`SPEED_COST`), plus a fixed share for
decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Decision = Literal["faster", "shed", "restore", "slower", "hold"]

# CPU per pixel of each x264 preset relative to ultrafast, measured roughly on this project's 2-core
# machine (ultrafast ~3x real time, veryfast ~1.5x for the same ladder); other encoders' presets are
# mapped onto x264's names, so the same scale serves as their estimate.
SPEED_COST: dict[str, float] = {
    "ultrafast": 1.0,
    "superfast": 1.5,
    "veryfast": 2.0,
    "faster": 2.9,
    "fast": 3.7,
    "medium": 4.5,
    "slow": 6.5,
    "slower": 11.0,
    "veryslow": 22.0,
}


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
        self,
        speed: float,
        active_cost: float,
        source_cost: float,
        restore_cost: float | None,
        *,
        can_speed_up: bool = False,
        slow_down_cost: float | None = None,
    ) -> Decision:
        """Faster presets, then shedding, when behind; restoring, then slower presets, with headroom.

        `can_speed_up`: some active rendition has a faster preset left. `slow_down_cost`: the extra cost
        of moving the sped-up renditions one preset back (None when all run at their own preset)."""
        if not self.enabled:
            return "hold"
        if self._settle > 0:
            self._settle -= 1
            return "hold"
        if speed < self.shed_below:
            if can_speed_up:
                self._settle = 1
                return "faster"
            if active_cost > 0:
                self._settle = 1
                return "shed"
            return "hold"
        base = active_cost + self.decode_share * source_cost
        steps: tuple[tuple[float | None, Decision], ...] = (
            (restore_cost, "restore"),
            (slow_down_cost, "slower"),
        )
        for extra, decision in steps:
            if extra is None:
                continue
            predicted = speed * base / (base + extra) if base > 0 else speed
            if predicted >= self.restore_margin:
                self._settle = 1
                return decision
            return "hold"  # restore before slowing down: never skip ahead to a slower preset
        return "hold"

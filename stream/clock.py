"""The sample clock: stream time comes from sample counts, mapped to wall time once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class SampleClock:
    """Maps stream seconds to wall-clock time from a single anchor taken at stream start."""

    def __init__(self) -> None:
        self._anchor: datetime | None = None

    def wall_time(self, t: float) -> datetime:
        """Wall time of stream second ``t``; the first call maps stream second 0 to now."""
        anchor = self._anchor
        if anchor is None:
            anchor = self._anchor = datetime.now(UTC)
        return anchor + timedelta(seconds=t)

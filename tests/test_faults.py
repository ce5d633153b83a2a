"""The short cases of bench/faults.py: a real daemon and a real redis-server, broken and restored.

The long ones (Redis down for minutes, a full disk on a tmpfs) stay in the bench;
their figures are in docs/RELIABILITY.md.
"""

from __future__ import annotations

from pathlib import Path

from bench.faults import daemon_killed, redis_frozen


def test_a_redis_frozen_for_5_s_loses_and_duplicates_nothing_and_is_back_within_2_s(
    tmp_path: Path,
) -> None:
    outcome = redis_frozen(tmp_path, 5.0)
    assert outcome.produced > 300  # about 41 events/s for 15 s
    assert (outcome.lost, outcome.duplicated) == (0, 0)
    assert outcome.delivered == outcome.produced
    assert outcome.recovery_s is not None
    assert outcome.recovery_s < 2.0


def test_a_daemon_killed_with_a_spool_delivers_it_once_after_restart(tmp_path: Path) -> None:
    outcome = daemon_killed(tmp_path, 5.0)
    assert outcome.produced > 300
    assert outcome.duplicated == 0
    assert outcome.lost == 0, outcome.notes
    assert outcome.spool_dropped == 0

"""The on-disk spool on its own: order, acknowledgement, restarts, its bound and torn writes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sinks.spool import SEGMENT_SUFFIX, Spool, SpoolLockedError
from tests.conftest import ROOT

SEGMENT = 4096
BOUND = 4 * SEGMENT


def _lines(start: int, stop: int) -> list[str]:
    """Event-like JSON lines of about 60 bytes, numbered ``start`` to ``stop - 1``."""
    return [json.dumps({"seq": i, "type": "level", "pad": "x" * 30}) for i in range(start, stop)]


def _seqs(lines: list[str]) -> list[int]:
    return [json.loads(line)["seq"] for line in lines]


def _drain(spool: Spool, batch: int = 7) -> list[int]:
    """Peek and acknowledge everything, in batches, as a sink does."""
    seqs: list[int] = []
    while lines := spool.peek(batch):
        seqs.extend(_seqs(lines))
        spool.ack(len(lines))
    return seqs


def _segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SEGMENT_SUFFIX))


def test_lines_come_out_in_order_across_segments_and_the_directory_ends_empty(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    for start in range(0, 120, 10):
        spool.append(_lines(start, start + 10))
    assert len(_segments(tmp_path)) == 2  # a segment takes whole batches until past 4 kB
    assert len(spool) == 120
    assert spool.size_bytes == sum(len(line) + 1 for line in _lines(0, 120))
    assert _drain(spool) == list(range(120))
    assert len(spool) == 0
    assert spool.size_bytes == 0
    assert _segments(tmp_path) == []
    assert not (tmp_path / "head").exists()
    spool.close()


def test_peek_without_ack_gives_the_same_lines_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    spool.append(_lines(0, 10))
    assert _seqs(spool.peek(4)) == [0, 1, 2, 3]
    assert _seqs(spool.peek(4)) == [0, 1, 2, 3]
    spool.ack(2)
    assert _seqs(spool.peek(100)) == list(range(2, 10))
    with pytest.raises(ValueError, match="cannot acknowledge 9"):
        spool.ack(9)
    spool.close()


def test_a_restart_delivers_what_was_left_from_the_last_acknowledged_line(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    spool.append(_lines(0, 100))
    spool.peek(30)
    spool.ack(30)
    spool.peek(10)  # delivered, perhaps, but never acknowledged: must come again
    spool.close()

    reopened = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    assert len(reopened) == 70
    reopened.append(_lines(100, 110))  # new lines queue behind the leftovers
    assert _drain(reopened) == list(range(30, 110))
    reopened.close()


def test_a_full_spool_drops_its_oldest_segment_and_counts_the_events(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    for start in range(0, 2000, 20):  # ~130 kB in all: far more than the 16 kB bound
        spool.append(_lines(start, start + 20))
        assert sum(p.stat().st_size for p in _segments(tmp_path)) <= BOUND
    kept = _drain(spool)
    assert spool.dropped == 2000 - len(kept)
    assert spool.dropped > 0
    assert kept == list(range(2000 - len(kept), 2000))  # the newest survive, in order
    spool.close()


def test_dropping_under_an_unacknowledged_peek_neither_skips_nor_repeats(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    spool.append(_lines(0, 60))
    peeked = spool.peek(20)
    for start in range(60, 400, 20):  # the peeked segment is dropped for room meanwhile
        spool.append(_lines(start, start + 20))
    spool.ack(len(peeked))  # a late acknowledgement must not eat newer lines
    kept = _drain(spool)
    assert kept == list(range(400 - len(kept), 400))
    assert spool.dropped == 400 - len(kept)
    spool.close()


def test_a_line_torn_by_a_crash_is_cut_off_and_counted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    spool.append(_lines(0, 5))
    spool.close()
    with _segments(tmp_path)[-1].open("ab") as f:
        f.write(b'{"seq": 5, "type": "lev')  # the process died here

    reopened = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    assert reopened.torn == reopened.dropped == 1
    assert len(reopened) == 5
    reopened.append(_lines(6, 8))
    assert _drain(reopened) == [0, 1, 2, 3, 4, 6, 7]
    reopened.close()


def test_a_lost_head_file_delivers_again_rather_than_losing(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    spool.append(_lines(0, 10))
    spool.peek(4)
    spool.ack(4)
    spool.close()
    (tmp_path / "head").write_text("garbage")

    reopened = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    assert _drain(reopened) == list(range(10))
    reopened.close()


def test_a_full_disk_is_counted_as_dropped_and_writing_resumes(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    spool.append(_lines(0, 3))
    spool.close()
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)  # appends go to a new segment
    next_segment = tmp_path / f"{1:012d}{SEGMENT_SUFFIX}"
    next_segment.symlink_to("/dev/full")  # every write to it fails with ENOSPC
    spool.append(_lines(3, 200))
    assert spool.dropped == 197
    spool.append(_lines(200, 202))
    assert _drain(spool) == [0, 1, 2, 200, 201]
    spool.close()


def test_two_sinks_cannot_share_a_spool_directory(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    with pytest.raises(SpoolLockedError, match="in use"):
        Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    spool.close()
    Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT).close()


def test_a_batch_larger_than_the_whole_spool_keeps_its_newest_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT)
    spool.append(_lines(0, 1000))
    kept = _drain(spool)
    assert kept == list(range(1000 - len(kept), 1000))
    assert spool.dropped == 1000 - len(kept)
    spool.close()


def test_a_bound_below_two_segments_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two segments"):
        Spool(tmp_path, max_bytes=SEGMENT, segment_bytes=SEGMENT)


# -- fsync policy, observed with strace on a real file system ------------------------------

_WORKLOAD = """
import sys, time
from pathlib import Path
from sinks.spool import Spool
policy, interval, directory = sys.argv[1], float(sys.argv[2]), Path(sys.argv[3])
spool = Spool(directory, max_bytes=1 << 20, segment_bytes=4096,
              fsync=policy, fsync_interval_s=interval)
line = '{"seq": 0, "type": "level", "pad": "%s"}' % ("x" * 40)
for batch in range(40):            # 40 batches of 10 lines: about 7 segments
    spool.append([line] * 10)
    time.sleep(0.005)
while lines := spool.peek(50):     # 8 acknowledgements: 8 head updates
    spool.ack(len(lines))
spool.close()
"""


def _fsyncs(tmp_path: Path, policy: str, interval: float = 1.0) -> list[str]:
    """The fsync/fdatasync calls of a real process spooling 40 batches under ``policy``."""
    directory = tmp_path / policy
    trace = tmp_path / f"{policy}.strace"
    subprocess.run(
        ["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync", "-o", str(trace),
         sys.executable, "-c", _WORKLOAD, policy, str(interval), str(directory)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    return [line for line in trace.read_text().splitlines() if "sync(" in line]


def test_fsync_always_syncs_every_batch_and_the_directory_on_rotation_and_head_updates(
    tmp_path: Path,
) -> None:
    calls = _fsyncs(tmp_path, "always")
    segments = [c for c in calls if SEGMENT_SUFFIX + ">" in c]
    directory = [c for c in calls if "/always>)" in c]
    head = [c for c in calls if "head.tmp>" in c]
    assert len(segments) >= 40  # each of the 40 batches
    assert len(head) == 8  # each acknowledgement, before the rename
    # each new segment's name, and each renamed head
    assert len(directory) >= 7 + 8


def test_fsync_interval_syncs_at_most_once_per_interval_and_at_close(tmp_path: Path) -> None:
    calls = _fsyncs(tmp_path, "interval", interval=10.0)
    segments = [c for c in calls if SEGMENT_SUFFIX + ">" in c]
    # Within a 10 s interval only rotations (a full segment is synced before the next
    # starts) and the close sync the data: far fewer than the 40 batches.
    assert 1 <= len(segments) <= 10
    assert [c for c in calls if "head.tmp>" in c]  # head updates stay durable


def test_fsync_never_makes_no_sync_call(tmp_path: Path) -> None:
    assert _fsyncs(tmp_path, "never") == []


def test_an_unknown_fsync_policy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="always, interval or never"):
        Spool(tmp_path, max_bytes=BOUND, segment_bytes=SEGMENT, fsync="sometimes")  # type: ignore[arg-type]

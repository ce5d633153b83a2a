import numpy as np
import pytest

from stream.windowing import Windower


def _windows(signal: np.ndarray, chunk: int, window: int, hop: int) -> list[tuple[int, bytes]]:
    w = Windower(window, hop, channel=0, sample_rate=16000)
    out = []
    for i in range(0, len(signal), chunk):
        out.extend((win.start, win.samples.tobytes()) for win in w.push(signal[i : i + chunk]))
    return out


@pytest.mark.parametrize(("window", "hop"), [(480, 480), (24000, 8000), (400, 1000), (1600, 1)])
def test_windows_do_not_depend_on_chunk_size(window: int, hop: int) -> None:
    signal = np.random.default_rng(1).standard_normal(40_000).astype(np.float32)
    reference = _windows(signal, len(signal), window, hop)
    for chunk in (1, 7, 160, 1024, 4096, 33_333):
        if hop == 1 and chunk == 1:
            continue  # 40k windows of 1600 samples, one sample at a time: slow, same logic
        assert _windows(signal, chunk, window, hop) == reference
    expected_count = (len(signal) - window) // hop + 1
    assert len(reference) == expected_count
    start, data = reference[-1]
    assert np.frombuffer(data, np.float32).tolist() == signal[start : start + window].tolist()


def test_window_times_follow_the_sample_count() -> None:
    w = Windower(1600, 800, channel=3, sample_rate=16000)
    windows = w.push(np.zeros(4000, np.float32))
    assert [(x.t_start, x.t_end, x.channel) for x in windows] == [
        (0.0, 0.1, 3), (0.05, 0.15, 3), (0.1, 0.2, 3), (0.15, 0.25, 3)
    ]  # fmt: skip


def test_memory_stays_bounded_whatever_the_chunk() -> None:
    w = Windower(480, 160, channel=0, sample_rate=16000)
    w.push(np.zeros(10_000_000, np.float32))
    assert w._buf.nbytes == (480 + 160) * 4


def test_reset_restarts_at_a_new_position() -> None:
    w = Windower(100, 100, channel=0, sample_rate=1000)
    w.push(np.zeros(150, np.float32))
    w.reset(5000)
    windows = w.push(np.ones(100, np.float32))
    assert [x.start for x in windows] == [5000]
    assert windows[0].samples.min() == 1.0


def test_rejects_non_positive_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        Windower(0, 10, channel=0, sample_rate=16000)

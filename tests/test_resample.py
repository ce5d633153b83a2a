import numpy as np
import pytest

from stream.resample import Resampler


def _resample(signal: np.ndarray, in_rate: int, chunk: int) -> np.ndarray:
    r = Resampler(in_rate, 16000)
    parts = [r.process(signal[i : i + chunk]) for i in range(0, len(signal), chunk)]
    parts.append(r.process(np.zeros(0, np.float32), last=True))
    return np.concatenate(parts)


@pytest.mark.parametrize("in_rate", [8000, 22050, 44100, 48000, 96000])
def test_resampling_does_not_depend_on_chunk_size(in_rate: int) -> None:
    t = np.arange(in_rate * 2) / in_rate
    signal = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    whole = _resample(signal, in_rate, len(signal))
    assert abs(len(whole) - 32000) <= 1
    for chunk in (160, 1024, 4096):
        np.testing.assert_array_equal(_resample(signal, in_rate, chunk), whole)


def test_keeps_a_tone_at_its_frequency_and_level() -> None:
    rate = 44100
    t = np.arange(rate) / rate
    out = _resample((0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32), rate, 4096)
    spectrum = np.abs(np.fft.rfft(out[2000:14000] * np.hanning(12000)))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 1000) < 2
    assert abs(np.sqrt(np.mean(out[2000:14000] ** 2)) - 0.5 / np.sqrt(2)) < 0.01


def test_same_rate_passes_through() -> None:
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(Resampler(16000, 16000).process(x), x)

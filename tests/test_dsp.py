"""The librosa- and SciPy-free filter banks, HPSS, median filter, DCT and peak picking compute
what librosa and SciPy compute."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from detectors.dsp import chroma_filterbank, dct_matrix, hpss, median_filter, mel_filterbank


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [(16_000, 1024, 64, 0.0, None), (16_000, 512, 40, 50.0, 8000.0), (22_050, 2048, 128, 0, None)],
)
def test_mel_filterbank_is_librosas(
    sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None
) -> None:
    ours = mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, dtype=np.float64
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("sr", "n_fft"), [(16_000, 4096), (22_050, 2048)])
def test_chroma_filterbank_is_librosas(sr: int, n_fft: int) -> None:
    theirs = librosa.filters.chroma(sr=sr, n_fft=n_fft, dtype=np.float64)
    np.testing.assert_allclose(chroma_filterbank(sr, n_fft), theirs, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("kernel", [(9, 9), (7, 5)])
def test_hpss_is_librosas(kernel: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    spectrum = rng.random((32, 200)).astype(np.float32) ** 3
    spectrum[:, 50:60] = 0.0  # silent frames: the masks split them evenly
    ours = hpss(spectrum, kernel)
    theirs = librosa.decompose.hpss(spectrum, kernel_size=kernel)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    ("shape", "size", "axis"), [((32, 200), 9, 1), ((40, 75), 5, 0), ((7, 3), 9, 1)]
)
def test_median_filter_is_scipys(shape: tuple[int, int], size: int, axis: int) -> None:
    from scipy.ndimage import median_filter as scipy_median_filter

    x = np.random.default_rng(size).random(shape).astype(np.float32)
    x[:, 1] = x[:, 0]  # ties
    window = (1, size) if axis == 1 else (size, 1)
    theirs = scipy_median_filter(x, size=window, mode="reflect")
    assert np.array_equal(median_filter(x, size, axis=axis), theirs)


@pytest.mark.parametrize("n", [1, 12, 40])
def test_dct_matrix_is_scipys_orthonormal_dct_ii(n: int) -> None:
    from scipy.fft import dct

    x = np.random.default_rng(n).normal(size=(30, n))
    np.testing.assert_allclose(x @ dct_matrix(n), dct(x, type=2, norm="ortho", axis=1), atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_find_peaks_is_scipys(seed: int) -> None:
    from scipy.signal import find_peaks as scipy_find_peaks

    from detectors.dsp import find_peaks

    rng = np.random.default_rng(seed)
    # Smoothed noise in dB with flat stretches (digital silence) and repeated values.
    x = np.convolve(rng.normal(0, 6, 5000), np.ones(5) / 5, mode="same")
    x[1000:1200] = -120.0
    x[3000:3010] = x[3000]
    x = np.round(x, 1 if seed % 2 else 3)
    for height, distance, prominence in [(-50.0, 10, 3.0), (0.0, 1, 0.5), (-200.0, 37, 8.0)]:
        ours = find_peaks(x, height=height, distance=distance, prominence=prominence)
        theirs, _ = scipy_find_peaks(x, height=height, distance=distance, prominence=prominence)
        np.testing.assert_array_equal(ours, theirs)
        assert len(ours) > 0


def test_find_peaks_edges() -> None:
    from detectors.dsp import find_peaks

    assert find_peaks(np.array([1.0, 2.0]), height=0, distance=1, prominence=0).size == 0
    # A flat top counts once, at its middle rounded down; a top at the signal's end does not.
    x = np.array([0.0, 1.0, 3.0, 3.0, 3.0, 3.0, 1.0, 2.0, 5.0])
    assert find_peaks(x, height=0, distance=1, prominence=0).tolist() == [3]
    with pytest.raises(ValueError, match="distance"):
        find_peaks(x, height=0, distance=0, prominence=0)

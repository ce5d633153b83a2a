"""Technical metadata measured while a file streams past: loudness, peaks, noise, bandwidth.

Loudness follows EBU R 128 on the original sample rate and channels: integrated
loudness and loudness range (EBU Tech 3342) from libebur128 (``pyebur128``), the
reference C implementation, and true peak from :mod:`detectors.metadata.truepeak`.
pyloudnorm 0.2.0 was measured first: it has integrated loudness and LRA but no true
peak, and its per-block Python loops cost 3.3 ms (I) and 5.2 ms (LRA) per second of
44.1 kHz stereo, against 1.1 ms for both in libebur128, which also streams.
Mono is measured as one channel (BS.1770), not as dual mono, so a full-scale mono
sine reads 3 dB below the same sine on both channels of a stereo file.

The other measures, as reported:

- ``dc_offset``: the mean of each channel (full scale 1.0);
- ``clipping_ratio``: share of samples in runs of 3 or more at full scale;
- ``noise_floor_dbfs``: the 10th percentile of the power of 50 ms frames (all
  channels), digital silence left out; ``digital_silence_ratio``: share of frames
  below -120 dBFS;
- ``effective_bandwidth_hz``: the highest frequency at which the long-term average
  spectrum of the channel mix (4096-point frames, four a second, smoothed over nine
  bins) is within 60 dB of its maximum; ``spectral_rolloff_99_hz``: the frequency
  below which 99 % of its energy lies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyebur128
from numpy.typing import NDArray

from detectors.metadata.truepeak import TruePeakMeter
from detectors.rows import Rows

FRAME_S = 0.05  # RMS frames for the noise floor
NOISE_FLOOR_PERCENTILE = 10.0
CLIP_LEVEL = 0.999  # |x| at or above this is at full scale (-0.009 dBFS)
CLIP_RUN = 3  # consecutive full-scale samples that make a clip
SPECTRUM_FFT = 4096
SPECTRUM_FRAMES_PER_S = 4.0
BANDWIDTH_DROP_DB = 60.0  # effective bandwidth: spectrum within this of its maximum
SILENT_DBFS = -120.0
DEAD_CHANNEL_PEAK = 10 ** (-90 / 20)  # a channel that never rises above -90 dBFS
RESULT_KEYS = (
    "duration", "loudness", "sample_peak_dbfs", "channel_peak_dbfs", "dc_offset",
    "clipping_ratio", "noise_floor_dbfs", "digital_silence_ratio", "silent_channels",
    "effective_bandwidth_hz", "spectral_rolloff_99_hz",
)  # fmt: skip


def to_db(power_or_amplitude: float, *, power: bool = False) -> float | None:
    """Level in dB (full scale 1.0), ``None`` for digital silence."""
    if power_or_amplitude <= 0 or not math.isfinite(power_or_amplitude):
        return None
    return round((10 if power else 20) * math.log10(power_or_amplitude), 2)


@dataclass
class _SpectrumState:
    """Long-term average spectrum of the channel mix, from spaced frames."""

    stride: int
    window: NDArray[np.float64]
    power: NDArray[np.float64]
    frames: int = 0
    next_start: int = 0  # absolute frame where the next spectrum frame starts
    carry: NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 1), np.float32))
    carry_start: int = 0


class TechnicalMeter:
    """Measures one file's technical properties from ``(frames, channels)`` float blocks."""

    def __init__(self, sample_rate: int, channels: int) -> None:
        self.sample_rate = sample_rate
        self.channels = channels
        modes = pyebur128.MeasurementMode
        # Histogram mode: libebur128 otherwise mallocs a list node per 400 ms block for the
        # whole file, small long-lived allocations that fragment the C heap between the
        # inference buffers (peak RSS of an hour +50 MB, varying run to run). Readings are
        # binned at 0.1 LU: within 0.08 LU of the exact ones on 28 recordings.
        self._ebur = pyebur128.R128State(
            channels, sample_rate, modes.MODE_I | modes.MODE_LRA | modes.MODE_HISTOGRAM
        )
        self._true_peak = TruePeakMeter(sample_rate)
        self._frames = 0
        self._sum = np.zeros(channels)
        self._peak = np.zeros(channels)
        self._clipped = 0
        self._clip_run = np.zeros(channels, dtype=np.int64)  # full-scale run at block end
        self._mix = np.full(channels, 1 / channels, np.float32)
        self._rms_frame = max(1, round(FRAME_S * sample_rate))
        self._rms_carry = np.zeros((channels, 0), np.float32)
        self._frame_power = Rows(np.float64)  # one per 50 ms frame, for the whole file
        self._spectrum = _SpectrumState(
            stride=max(SPECTRUM_FFT, round(sample_rate / SPECTRUM_FRAMES_PER_S)),
            window=np.hanning(SPECTRUM_FFT),
            power=np.zeros(SPECTRUM_FFT // 2 + 1),
        )

    def feed(self, block: NDArray[np.float32]) -> None:
        """Add a block of samples (full scale 1.0), shape ``(frames, channels)``.

        Any block size gives the same readings; the meter's own temporaries stay within
        a few hundred kB whatever the size (blocks of 16k frames cost a quarter of the
        per-call overhead of 4k ones).
        """
        if not len(block):
            return
        block = np.ascontiguousarray(block, dtype=np.float32)
        self._ebur.add_frames(block.ravel(), len(block))
        origin = self._frames
        self._frames += len(block)
        planar = np.ascontiguousarray(block.T)  # reductions along contiguous rows are fast
        self._sum += planar.sum(axis=1)  # float32 pairwise sums per block, float64 across
        peaks = np.maximum(planar.max(axis=1), -planar.min(axis=1))
        self._peak = np.maximum(self._peak, peaks)
        block_peak = float(peaks.max())
        self._true_peak.feed(block, block_peak)
        if block_peak >= CLIP_LEVEL or self._clip_run.any():
            self._count_clipping(block)
        self._feed_rms(planar)
        self._feed_spectrum(block, origin)

    def _count_clipping(self, block: NDArray[np.float32]) -> None:
        """Count samples in runs of at least ``CLIP_RUN`` at full scale; runs span blocks."""
        full = np.abs(block) >= CLIP_LEVEL
        for ch in range(self.channels):
            column = full[:, ch]
            if not column.any():
                self._close_run(ch)
                continue
            edges = np.flatnonzero(np.diff(np.concatenate([[0], column.view(np.int8), [0]])))
            starts, ends = edges[0::2], edges[1::2]
            lengths = ends - starts
            if starts[0] == 0:
                lengths[0] += self._clip_run[ch]
            else:
                self._close_run(ch)
            still_open = ends[-1] == len(column)
            closed = lengths[:-1] if still_open else lengths
            self._clipped += int(closed[closed >= CLIP_RUN].sum())
            self._clip_run[ch] = lengths[-1] if still_open else 0

    def _close_run(self, ch: int) -> None:
        if self._clip_run[ch] >= CLIP_RUN:
            self._clipped += int(self._clip_run[ch])
        self._clip_run[ch] = 0

    def _feed_rms(self, planar: NDArray[np.float32]) -> None:
        data = np.concatenate([self._rms_carry, planar], axis=1) if self._rms_carry.size else planar
        n = data.shape[1] // self._rms_frame
        if n:
            frames = data[:, : n * self._rms_frame].reshape(self.channels, n, self._rms_frame)
            # Mean power over each frame and the channels (float32 sums: ample for dB).
            power = np.einsum("cfs,cfs->f", frames, frames).astype(np.float64)
            self._frame_power.append(power / (self.channels * self._rms_frame))
        self._rms_carry = data[:, n * self._rms_frame :].copy()

    def _feed_spectrum(self, block: NDArray[np.float32], origin: int) -> None:
        """Add the spectra of the spaced frames that end within this block (channel mix).

        ``origin``: the stream frame of ``block[0]``. Only the samples a coming frame
        starts in are carried over, never the whole block.
        """
        state = self._spectrum
        end = origin + len(block)
        starts = range(state.next_start, end - SPECTRUM_FFT + 1, state.stride)
        if starts:
            frames = np.empty((len(starts), SPECTRUM_FFT), np.float64)
            for row, start in enumerate(starts):
                offset = start - origin
                if offset >= 0:
                    samples = block[offset : offset + SPECTRUM_FFT]
                else:  # the frame began in the samples carried from earlier blocks
                    samples = np.concatenate(
                        [state.carry[start - state.carry_start :], block[: offset + SPECTRUM_FFT]]
                    )
                frames[row] = samples @ self._mix
            frames *= state.window
            for power in np.square(np.abs(np.fft.rfft(frames, axis=1))):
                state.power += power  # frame by frame: the same sums as one frame a call
            state.frames += len(starts)
            state.next_start += len(starts) * state.stride
        if state.next_start >= end:
            state.carry, state.carry_start = state.carry[:0], end
        elif state.next_start >= origin:
            state.carry, state.carry_start = (
                block[state.next_start - origin :].copy(),
                state.next_start,
            )
        else:
            kept = state.carry[state.next_start - state.carry_start :]
            state.carry, state.carry_start = np.concatenate([kept, block]), state.next_start

    def result(self) -> dict[str, Any]:
        """The technical measures (levels in dBFS, loudness in LUFS/LU, times in seconds)."""
        frames = self._frames
        if frames == 0:
            return dict.fromkeys(RESULT_KEYS) | {"duration": 0.0, "clipping_ratio": 0.0}
        true_peak = self._true_peak.finish()
        for ch in range(self.channels):
            self._close_run(ch)
        mean = self._sum / frames
        power = self._frame_power.array()
        return {
            "duration": round(frames / self.sample_rate, 3),
            "loudness": self._loudness(true_peak),
            "sample_peak_dbfs": to_db(float(self._peak.max())),
            "channel_peak_dbfs": [to_db(float(p)) for p in self._peak],
            "dc_offset": [round(float(m), 6) for m in mean],
            "clipping_ratio": round(self._clipped / (frames * self.channels), 6),
            "noise_floor_dbfs": self._noise_floor(power),
            "digital_silence_ratio": round(
                float(np.mean(power <= 10 ** (SILENT_DBFS / 10))) if len(power) else 0.0, 4
            ),
            "silent_channels": [
                ch for ch in range(self.channels) if self._peak[ch] < DEAD_CHANNEL_PEAK
            ],
            **self._bandwidth(),
        }

    def _loudness(self, true_peak: float) -> dict[str, Any]:
        integrated = float(pyebur128.get_loudness_global(self._ebur))
        try:
            lra: float | None = float(pyebur128.get_loudness_range(self._ebur))
        except (ValueError, RuntimeError):
            lra = None
        return {
            "integrated_lufs": round(integrated, 2) if math.isfinite(integrated) else None,
            "loudness_range_lu": round(lra, 2) if lra is not None and math.isfinite(lra) else None,
            "true_peak_dbtp": to_db(true_peak),
            "true_peak_oversampling": self._true_peak.factor,
            "standard": "EBU R 128 / ITU-R BS.1770-4 (libebur128 "
            + pyebur128.get_libebur128_version()
            + ")",
        }

    def _noise_floor(self, power: NDArray[np.float64]) -> float | None:
        """Level of the quietest passages: a low percentile of 50 ms frame RMS, in dBFS."""
        audible = power[power > 10 ** (SILENT_DBFS / 10)]
        if not len(audible):
            return None
        return to_db(float(np.percentile(audible, NOISE_FLOOR_PERCENTILE)), power=True)

    def _bandwidth(self) -> dict[str, Any]:
        state = self._spectrum
        if state.frames == 0:
            return {"effective_bandwidth_hz": None, "spectral_rolloff_99_hz": None}
        ltas = state.power / state.frames
        freqs = np.fft.rfftfreq(SPECTRUM_FFT, 1 / self.sample_rate)
        # Smooth over nine bins so a single bin (a tone, a leak) never decides the edge.
        smooth = np.convolve(ltas, np.ones(9) / 9, mode="same")
        total = smooth.sum()
        if total <= 0:
            return {"effective_bandwidth_hz": None, "spectral_rolloff_99_hz": None}
        level = 10 * np.log10(np.maximum(smooth, 1e-30))
        above = np.flatnonzero(level >= level.max() - BANDWIDTH_DROP_DB)
        cumulative = np.cumsum(smooth) / total
        return {
            "effective_bandwidth_hz": round(float(freqs[above[-1]])),
            "spectral_rolloff_99_hz": round(float(freqs[np.searchsorted(cumulative, 0.99)])),
        }

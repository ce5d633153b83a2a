"""onnxruntime sessions for the shipped models: one thread each, one per model file.

Each session counts the CPU time of its runs, per calling thread and model file
(:func:`network_cpu_s`): with one intra-op thread a run computes on the thread that
called it, so a file analysis can say how much of its time the networks took
(``analyze --profile``, ``provenance.timings.network_cpu_s``), and the daemon what its
networks cost it (``heritage_network_cpu_seconds_total`` in ``/metrics``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import onnxruntime as ort

from detectors.files import file_sha256

_usage = threading.local()
_process_cpu_s: dict[str, float] = {}  # every thread's, for the daemon's /metrics
_process_lock = threading.Lock()


def network_cpu_s() -> dict[str, float]:
    """CPU seconds this thread has spent in each model's runs so far (by file name)."""
    return dict(getattr(_usage, "cpu_s", {}))


def process_network_cpu_s() -> dict[str, float]:
    """CPU seconds every thread of this process has spent in each model's runs so far."""
    with _process_lock:
        return dict(_process_cpu_s)


def _charge(model: str, seconds: float) -> None:
    spent: dict[str, float] | None = getattr(_usage, "cpu_s", None)
    if spent is None:
        spent = _usage.cpu_s = {}
    spent[model] = spent.get(model, 0.0) + seconds
    with _process_lock:
        _process_cpu_s[model] = _process_cpu_s.get(model, 0.0) + seconds


class _TimedSession(ort.InferenceSession):  # type: ignore[misc]
    """An ``InferenceSession`` whose runs are charged to the calling thread (two reads of
    the thread's CPU clock per run, about a microsecond)."""

    def __init__(self, path: Path, options: ort.SessionOptions) -> None:
        super().__init__(str(path), options, providers=["CPUExecutionProvider"])
        self.model_name = path.name

    @contextmanager
    def _charged(self) -> Iterator[None]:
        started = time.thread_time()
        try:
            yield
        finally:
            _charge(self.model_name, time.thread_time() - started)

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        with self._charged():
            return super().run(output_names, input_feed, run_options)

    def run_with_iobinding(self, iobinding: Any, run_options: Any = None) -> Any:
        with self._charged():
            return super().run_with_iobinding(iobinding, run_options)


@lru_cache(maxsize=8)
def onnx_session(path: Path) -> ort.InferenceSession:
    """A CPU session on one thread, shared by every caller (the models keep no state in it)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # The arena keeps the largest batch's buffers for good: 50 MB more peak memory in a
    # file analysis, for no measurable speed (bench/file_analysis.py).
    options.enable_cpu_mem_arena = False
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return _TimedSession(path, options)


class CardedModel:
    """A shipped ONNX model with a JSON card beside it (``.json``: ``onnx.sha256`` and what
    the outputs mean), loaded on first use: the file's sha256 is checked against the card,
    and :meth:`check_card` may refuse a card that does not describe what the caller reads."""

    default_path: Path

    def __init__(self, model_path: Path | None = None) -> None:
        """Use ``model_path`` (the shipped model if None)."""
        self.model_path = model_path or self.default_path
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()

    def check_card(self, card: dict[str, Any]) -> None:
        """Refuse (``ValueError``) a card whose labels are not this model's; none by default."""

    def _load(self) -> ort.InferenceSession:
        """The session, once the file and its card are verified."""
        with self._lock:
            if self._session is None:
                card: dict[str, Any] = json.loads(self.model_path.with_suffix(".json").read_text())
                digest = file_sha256(self.model_path)
                if digest != card["onnx"]["sha256"]:
                    raise ValueError(f"{self.model_path.name}: sha256 {digest} is not its card's")
                self.check_card(card)
                self._session = onnx_session(self.model_path)
            return self._session

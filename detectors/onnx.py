"""onnxruntime sessions for the shipped models: one thread each, one per model file."""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import onnxruntime as ort

from detectors.files import file_sha256


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
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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

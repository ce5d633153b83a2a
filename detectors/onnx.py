"""onnxruntime sessions for the shipped models: one thread each, one per model file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import onnxruntime as ort


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

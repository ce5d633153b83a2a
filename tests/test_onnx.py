"""The sessions' accounting of their CPU time, per calling thread and model, and the
daemon's metric of it."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from config.pipeline import PipelineConfig
from detectors import VadConfig
from detectors.onnx import network_cpu_s, process_network_cpu_s
from detectors.speaker.encoder import SpeakerEncoder
from stream.sources import FileSourceConfig
from tests.daemon import run_runtime


def test_runs_are_charged_to_the_thread_that_ran_them() -> None:
    encoder = SpeakerEncoder()
    partials = np.random.default_rng(0).random((8, 160, 40)).astype(np.float32)
    name = "ge2e_speaker_encoder_int8.onnx"
    before = network_cpu_s().get(name, 0.0)
    seen: dict[str, float] = {}

    def elsewhere() -> None:
        encoder.embed_partials(partials)
        seen.update(network_cpu_s())

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert seen[name] > 0  # the other thread's own count
    assert network_cpu_s().get(name, 0.0) == before  # not this one's
    encoder.embed_partials(partials)
    assert network_cpu_s()[name] > before


def test_the_daemon_counts_each_networks_cpu_in_its_metrics() -> None:
    path = Path(__file__).parent / "data" / "vad_clean.flac"
    config = PipelineConfig(
        sources=[FileSourceConfig(name="scene", path=path, realtime=False)],
        sinks=[],
        detectors=[VadConfig()],
    )
    model = "silero_vad_16k_seq.onnx"
    before = process_network_cpu_s().get(model, 0.0)

    registry = run_runtime(config, 2.0).metrics.registry
    counted = registry.get_sample_value("heritage_network_cpu_seconds_total", {"model": model})
    assert counted is not None
    assert counted > before

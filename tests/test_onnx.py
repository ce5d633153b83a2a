"""The sessions' accounting of their CPU time, per calling thread and model."""

from __future__ import annotations

import threading

import numpy as np

from detectors.onnx import network_cpu_s
from detectors.speaker.encoder import SpeakerEncoder


def test_runs_are_charged_to_the_thread_that_ran_them() -> None:
    encoder = SpeakerEncoder()
    partials = np.random.default_rng(0).random((8, 160, 40)).astype(np.float32)
    name = "ge2e_speaker_encoder.onnx"
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

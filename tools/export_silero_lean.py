"""Rebuild the shipped Silero VAD graph without its shape logic: the same weights, the same
arithmetic, about half the CPU per 32 ms frame.

``detectors/models/silero_vad_16k_op15.onnx`` (silero-vad 5, MIT) is a TorchScript
export: of its 121 nodes and 24 nested ``If`` subgraphs, most compute shapes and pick
branches for unbatched or 8 kHz input at every call, around a network of nine
operations. Silero runs once per 32 ms frame with its recurrent state, so the
per-node overhead is most of its cost (about 0.1 ms per frame, the largest single
cost of a file analysis). This script reads the weights from that file and writes the
network alone, for 16 kHz input of 512 samples plus 64 of context:

    reflect-pad 64 -> STFT conv (258 x 256, hop 128) -> magnitude -> 4 x (conv3 + ReLU)
    -> LSTM (128) -> ReLU -> linear -> sigmoid

Inputs ``input`` float32 [batch, 576] and ``state`` float32 [2, batch, 128] (h, c);
outputs ``output`` [batch, 1] and ``stateN`` [2, batch, 128], as in the original (whose
``sr`` input only checked the rate). PyTorch's LSTM gate order (i, f, g, o) is
reordered to ONNX's (i, o, f, c), as the original's own slices do. The script then
runs both files frame by frame with their recurrent state over the committed
recordings and refuses to write unless every probability agrees within 1e-5.

Needs ``onnx`` and ``onnxruntime`` (never at run time). In a THROWAWAY virtualenv::

    python3 -m venv /tmp/silerox
    /tmp/silerox/bin/pip install onnx onnxruntime numpy soundfile soxr
    /tmp/silerox/bin/python tools/export_silero_lean.py
    rm -r /tmp/silerox

``tests/test_vad.py`` checks the same parity with onnxruntime alone.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import soundfile as sf
import soxr
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "detectors" / "models"
ORIGINAL = MODELS / "silero_vad_16k_op15.onnx"
LEAN = MODELS / "silero_vad_16k_seq.onnx"
FRAME, CONTEXT, HIDDEN = 512, 64, 128
PARITY_FILES = [
    *sorted((ROOT / "tests" / "data").glob("vad_*.flac")),
    ROOT / "stream" / "data" / "demo.flac",
]
TOLERANCE = 1e-5


def weights(path: Path) -> dict[str, np.ndarray]:
    model = onnx.load(str(path))
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def lstm_gates(matrix: np.ndarray) -> np.ndarray:
    """PyTorch's (i, f, g, o) rows to ONNX's (i, o, f, c)."""
    h = HIDDEN
    return np.concatenate([matrix[:h], matrix[3 * h :], matrix[h : 3 * h]])


def build(w: dict[str, np.ndarray]) -> onnx.ModelProto:
    p = "model."
    inits = {
        "basis": w[p + "stft.forward_basis_buffer"],
        "pads": np.array([0, 0, 0, CONTEXT], np.int64),
        "axis1": np.array([1], np.int64),
        "re_start": np.array([0], np.int64),
        "squeeze_axes": np.array([1, 2], np.int64),
        "re_end": np.array([129], np.int64),
        "im_end": np.array([258], np.int64),
        "W": lstm_gates(w[p + "decoder.rnn.weight_ih"])[None],
        "R": lstm_gates(w[p + "decoder.rnn.weight_hh"])[None],
        "B": np.concatenate(
            [lstm_gates(w[p + "decoder.rnn.bias_ih"]), lstm_gates(w[p + "decoder.rnn.bias_hh"])]
        )[None],
        "head_w": w[p + "decoder.decoder.2.weight"][:, :, 0].T.copy(),  # [128, 1]
        "head_b": w[p + "decoder.decoder.2.bias"],
    }
    for i in range(4):
        inits[f"enc{i}_w"] = w[f"{p}encoder.{i}.reparam_conv.weight"]
        inits[f"enc{i}_b"] = w[f"{p}encoder.{i}.reparam_conv.bias"]
    node = helper.make_node
    nodes = [
        node("Pad", ["input", "pads"], ["padded"], mode="reflect"),
        node("Unsqueeze", ["padded", "axis1"], ["signal"]),
        node("Conv", ["signal", "basis"], ["spectrum"], kernel_shape=[256], strides=[128]),
        node("Slice", ["spectrum", "re_start", "re_end", "axis1"], ["re"]),
        node("Slice", ["spectrum", "re_end", "im_end", "axis1"], ["im"]),
        node("Mul", ["re", "re"], ["re2"]),
        node("Mul", ["im", "im"], ["im2"]),
        node("Add", ["re2", "im2"], ["power"]),
        node("Sqrt", ["power"], ["enc_in0"]),
    ]
    for i, stride in enumerate((1, 2, 2, 1)):
        nodes += [
            node(
                "Conv", [f"enc_in{i}", f"enc{i}_w", f"enc{i}_b"], [f"enc_conv{i}"],
                kernel_shape=[3], pads=[1, 1], strides=[stride],
            ),
            node("Relu", [f"enc_conv{i}"], [f"enc_in{i + 1}"]),
        ]  # fmt: skip
    nodes += [
        # The frames are consecutive steps of one stream: [frames, 1 (batch), 128].
        node("Transpose", ["enc_in4"], ["sequence"], perm=[0, 2, 1]),
        node("Split", ["state"], ["h0", "c0"], axis=0, num_outputs=2),
        node(
            "LSTM",
            ["sequence", "W", "R", "B", "", "h0", "c0"],
            ["hidden_all", "h1", "c1"],
            hidden_size=HIDDEN,
        ),
        node("Concat", ["h1", "c1"], ["stateN"], axis=0),
        node("Squeeze", ["hidden_all", "squeeze_axes"], ["hidden"]),  # [frames, 128]
        node("Relu", ["hidden"], ["hidden_relu"]),
        node("Gemm", ["hidden_relu", "head_w", "head_b"], ["logit"]),
        node("Sigmoid", ["logit"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "silero_vad_16k_seq",
        [
            helper.make_tensor_value_info("input", TensorProto.FLOAT, ["frames", FRAME + CONTEXT]),
            helper.make_tensor_value_info("state", TensorProto.FLOAT, [2, 1, HIDDEN]),
        ],
        [
            helper.make_tensor_value_info("output", TensorProto.FLOAT, ["frames", 1]),
            helper.make_tensor_value_info("stateN", TensorProto.FLOAT, [2, 1, HIDDEN]),
        ],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    model.producer_name = "heritage-audio tools/export_silero_lean.py"
    onnx.checker.check_model(model, full_check=True)
    return model


def frames_of(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != 16000:
        mono = soxr.resample(mono, rate, 16000).astype(np.float32)
    n = len(mono) // FRAME
    return np.ascontiguousarray(mono[: n * FRAME].reshape(n, FRAME))


def with_context(frames: np.ndarray) -> np.ndarray:
    """Each frame preceded by the last 64 samples of the one before (zeros for the first)."""
    context = np.concatenate([np.zeros((1, CONTEXT), np.float32), frames[:-1, -CONTEXT:]])
    return np.concatenate([context, frames], axis=1)


def run(session: ort.InferenceSession, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and final state, one frame per call with the state carried."""
    names = {i.name for i in session.get_inputs()}
    state = np.zeros((2, 1, HIDDEN), np.float32)
    out = np.empty(len(frames), np.float32)
    for i, row in enumerate(with_context(frames)):
        feed = {"input": row[None], "state": state}
        if "sr" in names:
            feed["sr"] = np.array(16000, np.int64)
        probability, state = session.run(None, feed)
        out[i] = probability[0, 0]
    return out, state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--original", type=Path, default=ORIGINAL)
    parser.add_argument("--out", type=Path, default=LEAN)
    args = parser.parse_args()
    model = build(weights(args.original))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    original = ort.InferenceSession(str(args.original), options)
    lean = ort.InferenceSession(model.SerializeToString(), options)
    worst = 0.0
    for path in PARITY_FILES:
        frames = frames_of(path)
        reference, final = run(original, frames)
        stepped, stepped_final = run(lean, frames)
        # All frames in one call: the LSTM steps through them inside the graph.
        whole, whole_final = lean.run(
            None, {"input": with_context(frames), "state": np.zeros((2, 1, HIDDEN), np.float32)}
        )
        diff = max(
            float(np.abs(reference - stepped).max()),
            float(np.abs(reference - whole[:, 0]).max()),
            float(np.abs(final - stepped_final).max()),
            float(np.abs(final - whole_final).max()),
        )
        print(f"{path.name}: {len(frames)} frames, max |difference| {diff:.2e}")
        worst = max(worst, diff)
    if worst > TOLERANCE:
        raise SystemExit(f"parity failed: {worst:.2e} > {TOLERANCE:.0e}; nothing written")
    onnx.save(model, str(args.out))
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes) sha256 {digest}")


if __name__ == "__main__":
    main()

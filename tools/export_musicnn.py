"""Export musicnn's pretrained MTT_musicnn tagger to ONNX and write the parity references.

Writes ``detectors/models/musicnn_mtt.onnx`` (fp32, opset 17; input ``logmel`` float32
[batch, 187, 96], 3 s of log-mel frames; outputs ``taggram`` [batch, 50], sigmoid
probabilities of the MagnaTagATune tags, ``penultimate`` [batch, 200], and the mid-end's
``mean_pool`` and ``max_pool`` [batch, 753]) and its card ``musicnn_mtt.json``, checks
onnxruntime against TensorFlow, and writes ``tests/data/heritage/musicnn_reference.npz``:
per committed clip, its log-mel spectrogram and TF's taggram and penultimate features
of its patches every 61 frames (musicnn's ``input_overlap=1``).

TensorFlow is needed here only, never at run time. musicnn 0.1.0 pins numpy < 1.17,
hence ``--no-deps``; its TF1-style ``tf.compat.v1.layers`` need tf-keras and
``TF_USE_LEGACY_KERAS=1`` on TensorFlow >= 2.16. Run this in a THROWAWAY virtualenv::

    python3 -m venv /tmp/musicnn-venv
    /tmp/musicnn-venv/bin/pip download --no-deps -d /tmp/musicnn-dl musicnn==0.1.0
    /tmp/musicnn-venv/bin/pip install --no-deps /tmp/musicnn-dl/musicnn-0.1.0-py3-none-any.whl
    /tmp/musicnn-venv/bin/pip install "tensorflow~=2.19.0" "tf-keras~=2.19.0" \
        tf2onnx==1.17.0 onnx onnxruntime librosa soundfile
    TF_USE_LEGACY_KERAS=1 /tmp/musicnn-venv/bin/python tools/export_musicnn.py \
        --wheel /tmp/musicnn-dl/musicnn-0.1.0-py3-none-any.whl
    rm -r /tmp/musicnn-venv /tmp/musicnn-dl

The front end is musicnn's ``extractor.batch_data`` with two departures, both
deliberate: (1) musicnn casts the mel power to float16 *before* the log, so
``10000 * mel`` overflows float16 (65504) to inf wherever the log-mel would
exceed 4.82 -- every clip here has such bins -- and every such patch yields
one fixed tag vector; here the log is taken in float32. (2) librosa >= 0.10 pads
the centred STFT with zeros; musicnn was trained (2019) with librosa < 0.10,
whose default ``pad_mode`` was ``"reflect"``, which is passed explicitly here.

tf2onnx's optimiser does not name (or order) its rewrites the same way twice, so
each run writes a file with another sha256 (functionally the same, to ~1e-6):
after a run, commit the ONNX file, its card and the references together.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

# Before TensorFlow is imported: tf.compat.v1.layers needs tf-keras; less C++ logging.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message=".*is deprecated", category=UserWarning)

import librosa  # noqa: E402
import musicnn  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import soundfile as sf  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf2onnx  # noqa: E402
from musicnn import configuration as config  # noqa: E402
from musicnn import models  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ONNX_PATH = REPO / "detectors" / "models" / "musicnn_mtt.onnx"
CLIP_DIR = REPO / "tests" / "data" / "heritage"
MODEL = "MTT_musicnn"
N_FRAMES = 187  # mel frames per patch: librosa.time_to_frames(3 s) + 1, as extractor.py
REFERENCE_HOP = 61  # frames between reference patches: extractor(input_overlap=1 s)
OPSET = 17
OUTPUTS = ("taggram", "penultimate", "mean_pool", "max_pool")
MAX_MODEL_DIFF = 1e-5  # largest |onnxruntime - TF| accepted, relative to max(1, largest |TF|)


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


Built = tuple[Any, dict[Any, Any], dict[str, Any]]  # session, feed of constants, outputs


def build(model: str, *, training_placeholder: bool) -> Built:
    """musicnn's graph, checkpoint restored: (session, {input tensor: None}, {name: output}).

    With ``training_placeholder`` the graph is extractor.py's own (``is_training`` a bool
    placeholder, fed False); without it ``is_training`` is the constant False, which
    leaves no conditional batch-norm or dropout ops for the converter.
    """
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, config.N_MELS], name="logmel")
        is_training: Any = (
            tf.compat.v1.placeholder(tf.bool, name="is_training") if training_placeholder else False
        )
        logits, *_, mean_pool, max_pool, penultimate = models.define_model(
            x,
            is_training,
            model,
            len(config.MTT_LABELS),  # MSD_LABELS has 50 too
        )
        outputs = {
            "taggram": tf.nn.sigmoid(logits, name="taggram"),
            "penultimate": tf.identity(penultimate, name="penultimate"),
            "mean_pool": tf.identity(mean_pool, name="mean_pool"),
            "max_pool": tf.identity(max_pool, name="max_pool"),
        }
        threads = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=1, inter_op_parallelism_threads=1
        )
        session = tf.compat.v1.Session(graph=graph, config=threads)
        # The checkpoint's files are named .index, .data-00000-of-00001 and so on.
        tf.compat.v1.train.Saver().restore(session, f"{Path(musicnn.__file__).parent / model}/")
    feed = {x: None, is_training: False} if training_placeholder else {x: None}
    return session, feed, outputs


def run_tf(built: Built, patches: np.ndarray) -> dict[str, Any]:
    """TensorFlow's outputs for ``patches`` [n, 187, 96] (the input is fed where None stands)."""
    session, feed, outputs = built
    feed = {key: patches if value is None else value for key, value in feed.items()}
    return dict(zip(outputs, session.run(list(outputs.values()), feed_dict=feed), strict=True))


def export(model: str, out: Path, labels: list[str]) -> dict[str, Any]:
    """Freeze ``model``, convert it with tf2onnx and check onnxruntime against TensorFlow."""
    frozen_built = build(model, training_placeholder=False)
    session, _, outputs = frozen_built
    names = [t.op.name for t in outputs.values()]
    frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
        session, session.graph.as_graph_def(), names
    )
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen,
        input_names=["logmel:0"],
        output_names=[f"{name}:0" for name in names],
        opset=OPSET,
        tensors_to_rename={f"{name}:0": name for name in ["logmel", *names]},
    )
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    proto.producer_name = "tools/export_musicnn.py"
    proto.doc_string = f"musicnn {version('musicnn')} {model} (ISC licence, MTG-UPF)"
    onnx.helper.set_model_props(proto, {"tags": json.dumps(labels), "source_model": model})
    onnx.checker.check_model(proto, full_check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))

    ort_session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    original = build(model, training_placeholder=True)
    rng = np.random.default_rng(0)
    diffs: dict[str, float] = {}
    for batch in (1, 8):
        # log10(10000 * mel + 1) of music at -20 dBFS spans about 0 to 5.
        patches = (rng.random((batch, N_FRAMES, config.N_MELS)) ** 2 * 5).astype(np.float32)
        expected = run_tf(original, patches)
        frozen_tf = run_tf(frozen_built, patches)
        got = dict(zip(OUTPUTS, ort_session.run(list(OUTPUTS), {"logmel": patches}), strict=True))
        for name in OUTPUTS:
            diff = float(np.max(np.abs(got[name] - expected[name])))
            if not np.array_equal(frozen_tf[name], expected[name]):
                raise SystemExit(f"the graph without is_training differs on {name}")
            scale = max(1.0, float(np.max(np.abs(expected[name]))))
            print(f"batch {batch} {name}: onnxruntime vs TF {diff:.2e} (|TF| <= {scale:.1f})")
            diffs[name] = max(diffs.get(name, 0.0), diff)
            if diff > MAX_MODEL_DIFF * scale:
                raise SystemExit(f"the ONNX export differs from TensorFlow by {diff:.2e} on {name}")
    return diffs


def logmel(path: Path, dtype: type[np.floating[Any]] = np.float32) -> np.ndarray:
    """musicnn's log-mel spectrogram [frames, 96] of a clip, the log taken in ``dtype``."""
    audio, rate = librosa.load(path, sr=config.SR)  # as extractor.batch_data
    mel = librosa.feature.melspectrogram(
        y=audio,
        sr=rate,
        hop_length=config.FFT_HOP,
        n_fft=config.FFT_SIZE,
        n_mels=config.N_MELS,
        pad_mode="reflect",  # librosa < 0.10's default, which musicnn was trained with
    ).T.astype(dtype)
    with np.errstate(over="ignore"):  # float16 (musicnn's) overflows to inf
        return np.log10(dtype(10000) * mel + dtype(1))


def patches(spectrogram: np.ndarray, hop: int) -> np.ndarray:
    """extractor.batch_data's patches: whole 187-frame patches every ``hop`` frames, no tail."""
    starts = range(0, spectrogram.shape[0] - N_FRAMES + 1, hop)
    return np.stack([spectrogram[s : s + N_FRAMES] for s in starts])


def float16_effect(path: Path, built: Built, taggram: np.ndarray) -> str:
    """How far musicnn's own float16 cast before the log moves this clip's taggram."""
    spectrogram = logmel(path, np.float16)
    infinite = int(np.sum(~np.isfinite(spectrogram)))
    diff = np.max(np.abs(run_tf(built, patches(spectrogram, REFERENCE_HOP))["taggram"] - taggram))
    return f"musicnn's float16 front end: {infinite} infinite bins, taggram off by {diff:.1e}"


def references(model: str, clip_dir: Path, labels: list[str]) -> dict[str, np.ndarray]:
    """Log-mel, taggram and penultimate features of every clip from the original TF graph."""
    original = build(model, training_placeholder=True)
    arrays: dict[str, np.ndarray] = {}
    for path in sorted(clip_dir.glob("*.flac")):
        if sf.info(path).samplerate != config.SR:
            raise SystemExit(f"{path} is not at {config.SR} Hz")
        spectrogram = logmel(path)
        out = run_tf(original, patches(spectrogram, REFERENCE_HOP))
        name = path.stem
        arrays[f"{name}.logmel"] = spectrogram
        arrays[f"{name}.taggram"] = out["taggram"].astype(np.float32)
        arrays[f"{name}.penultimate"] = out["penultimate"].astype(np.float32)
        top = np.argsort(-out["taggram"].mean(axis=0))[:5]
        summary = ", ".join(f"{labels[i]} {out['taggram'][:, i].mean():.2f}" for i in top)
        print(f"{path.name}: {len(out['taggram'])} patches; {summary}")
        print(f"    {float16_effect(path, original, out['taggram'])}")
    arrays["patch_hop"] = np.array(REFERENCE_HOP)
    arrays["versions"] = np.array(tool_versions())
    return arrays


def tool_versions() -> str:
    """The versions that made the export and the references."""
    return (
        f"musicnn {version('musicnn')}, tensorflow {tf.__version__}, "
        f"tf-keras {version('tf-keras')}, tf2onnx {tf2onnx.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
        f"librosa {librosa.__version__}, numpy {np.__version__}"
    )


def card(out: Path, model: str, labels: list[str], wheel: Path | None) -> dict[str, Any]:
    """The model card written next to the ONNX file."""
    data = Path(musicnn.__file__).parent / model / ".data-00000-of-00001"
    return {
        "name": out.stem,
        "source": {
            "package": f"musicnn {version('musicnn')}",
            "model": model,
            "licence": "ISC (detectors/models/LICENSE.musicnn)",
            "training_data": "MagnaTagATune (MTT)"
            if "MTT" in model
            else "Million Song Dataset (MSD)",
            "wheel": wheel.name if wheel else None,
            "wheel_sha256": sha256(wheel) if wheel else None,
            "checkpoint_data_sha256": sha256(data),
        },
        "onnx": {"file": out.name, "sha256": sha256(out), "bytes": out.stat().st_size},
        "opset": OPSET,
        "tools": {
            "tensorflow": tf.__version__,
            "tf_keras": version("tf-keras"),
            "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__,
        },
        "input": {
            "name": "logmel",
            "shape": ["batch", N_FRAMES, config.N_MELS],
            "dtype": "float32",
        },
        "outputs": {
            "taggram": ["batch", len(labels)],
            "penultimate": ["batch", 200],
            "mean_pool": ["batch", 753],
            "max_pool": ["batch", 753],
        },
        "frontend": {
            **{"sample_rate": config.SR, "n_fft": config.FFT_SIZE, "hop": config.FFT_HOP},
            "stft": "periodic Hann window, frames centred on k * hop, reflect padding, |X|^2",
            "mel": f"{config.N_MELS} bands 0 Hz to sr/2, Slaney scale and area norm (librosa's)",
            "log": "log10(10000 * mel + 1) in float32 (musicnn: float16, overflowing)",
            **{"patch_frames": N_FRAMES, "patch_hop_frames": N_FRAMES},
        },
        "tags": labels,
    }


def main() -> None:
    """Command line: export the model, write its card, then the references."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=ONNX_PATH, help="ONNX file to write")
    parser.add_argument("--model", default=MODEL, help="musicnn model (MTT_musicnn, MSD_musicnn)")
    parser.add_argument("--clips", type=Path, default=CLIP_DIR, help="folder of 16 kHz clips")
    parser.add_argument("--wheel", type=Path, help="the musicnn wheel installed, for its sha256")
    args = parser.parse_args()
    tf.compat.v1.disable_eager_execution()
    labels = list(config.MTT_LABELS if "MTT" in args.model else config.MSD_LABELS)
    print(tool_versions())
    diffs = export(args.model, args.onnx, labels)
    print(f"{args.onnx}: {args.onnx.stat().st_size} bytes, sha256 {sha256(args.onnx)}")
    print("largest onnxruntime vs TF differences:", {k: f"{v:.2e}" for k, v in diffs.items()})
    card_path = args.onnx.with_suffix(".json")
    text = json.dumps(card(args.onnx, args.model, labels, args.wheel), indent=1)
    card_path.write_text(text + "\n")
    reference = args.clips / "musicnn_reference.npz"
    np.savez_compressed(reference, **references(args.model, args.clips, labels))
    print(f"{reference}: {reference.stat().st_size} bytes")


if __name__ == "__main__":
    main()

"""The bootstrap model version: what serves before any trained version exists.

``content-projected``: a seeded random orthogonal projection ``W`` float32
``[content_dim, output_dim]`` of the frozen encoder's content embedding, exported as the two ONNX
towers of docs/CONTRACTS.md:

- item tower: ``normalise(content @ W)``, ``content`` ``[batch, content_dim]``;
- user tower: ``normalise(mean(content[mask]) @ W)``, ``content`` ``[batch, seq, content_dim]``,
  ``mask`` int64 ``[batch, seq]``.

A random orthogonal projection roughly keeps cosine similarities (Johnson-Lindenstrauss), so the
bootstrap recommends items whose text resembles what the user interacted with: the LEARN
"w/o alignment" variant. Its id is derived from the encoder, dims and seed, so every replica
that bootstraps at once builds the same version.

Alternatively ``settings.versions.bootstrap_model`` names an offline version folder (with ``meta.json``)
or a trainer checkpoint file, which is exported and published instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from learnrec.shared.config import Settings
from learnrec.versions import record
from learnrec.versions.registry import ModelRegistry, VersionError

log = logging.getLogger(__name__)

OPSET = 17
NORM_EPS = 1e-12
BOOTSTRAP_LOCK_TTL_S = 300


def projection_matrix(content_dim: int, output_dim: int, seed: int) -> np.ndarray:
    """Seeded random matrix ``[content_dim, output_dim]`` float32 with orthonormal columns
    (orthonormal rows when ``output_dim > content_dim``)."""
    rng = np.random.default_rng(seed)
    gaussian = rng.standard_normal((max(content_dim, output_dim), min(content_dim, output_dim)))
    q, r = np.linalg.qr(gaussian)
    q = q * np.sign(np.diag(r))  # a unique, uniformly distributed orthogonal factor
    return (q if content_dim >= output_dim else q.T).astype(np.float32)


def bootstrap_version_id(encoder_id: str, content_dim: int, output_dim: int, seed: int) -> str:
    """``v19700101000000-{6 hex}``: sorts before every trained version, same on every replica."""
    digest = hashlib.sha256(f"{encoder_id}|{content_dim}|{output_dim}|{seed}".encode()).hexdigest()
    return f"v19700101000000-{digest[:6]}"


def _normalised(name_in: str, name_out: str) -> list[onnx.NodeProto]:
    """Nodes computing ``name_out = name_in / max(||name_in||_2, eps)`` over the last axis."""
    return [
        helper.make_node("Mul", [name_in, name_in], [f"{name_in}_sq"]),
        helper.make_node("ReduceSum", [f"{name_in}_sq", "last_axis"], [f"{name_in}_ss"], keepdims=1),
        helper.make_node("Sqrt", [f"{name_in}_ss"], [f"{name_in}_norm"]),
        helper.make_node("Max", [f"{name_in}_norm", "eps"], [f"{name_in}_safe"]),
        helper.make_node("Div", [name_in, f"{name_in}_safe"], [name_out]),
    ]


def _constants(projection: np.ndarray, pooled: bool) -> list[onnx.TensorProto]:
    """The initializers of a tower; ``pooled`` adds the axes the user tower's pooling uses."""
    constants = [
        numpy_helper.from_array(projection, "projection"),
        numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
        numpy_helper.from_array(np.array(NORM_EPS, np.float32), "eps"),
    ]
    if pooled:
        constants += [
            numpy_helper.from_array(np.array([1], np.int64), "seq_axis"),
            numpy_helper.from_array(np.array([2], np.int64), "feature_axis"),
        ]
    return constants


def item_tower_graph(projection: np.ndarray) -> onnx.ModelProto:
    """ONNX item tower: ``content`` ``[batch, D]`` -> ``item_vector`` ``[batch, out]``."""
    content_dim, output_dim = projection.shape
    nodes = [helper.make_node("MatMul", ["content", "projection"], ["projected"])]
    nodes += _normalised("projected", "item_vector")
    graph = helper.make_graph(
        nodes,
        "bootstrap_item_tower",
        [helper.make_tensor_value_info("content", TensorProto.FLOAT, ["batch", content_dim])],
        [helper.make_tensor_value_info("item_vector", TensorProto.FLOAT, ["batch", output_dim])],
        initializer=_constants(projection, pooled=False),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def user_tower_graph(projection: np.ndarray) -> onnx.ModelProto:
    """ONNX user tower: ``content`` ``[batch, seq, D]``, ``mask`` int64 ``[batch, seq]`` ->
    ``user_vector`` ``[batch, out]``. The masked sum stands for the mean: normalising after the
    linear projection makes the two equal."""
    content_dim, output_dim = projection.shape
    nodes = [
        helper.make_node("Cast", ["mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "feature_axis"], ["mask_3d"]),
        helper.make_node("Mul", ["content", "mask_3d"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq_axis"], ["pooled"], keepdims=0),
        helper.make_node("MatMul", ["pooled", "projection"], ["projected"]),
    ]
    nodes += _normalised("projected", "user_vector")
    graph = helper.make_graph(
        nodes,
        "bootstrap_user_tower",
        [
            helper.make_tensor_value_info("content", TensorProto.FLOAT, ["batch", "seq", content_dim]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("user_vector", TensorProto.FLOAT, ["batch", output_dim])],
        initializer=_constants(projection, pooled=True),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def export_content_projected(
    out_dir: Path, encoder_id: str, content_dim: int, output_dim: int, seed: int, max_history: int
) -> Path:
    """Write the bootstrap version folder (atomically: temp folder + rename). An existing
    folder is kept as it is (another replica wrote the same version)."""
    out_dir = Path(out_dir)
    if (out_dir / "meta.json").is_file():
        return out_dir
    projection = projection_matrix(content_dim, output_dim, seed)
    meta = {
        "version": out_dir.name,
        "encoder": encoder_id,
        "content_dim": content_dim,
        "output_dim": output_dim,
        "max_history": max_history,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": f"bootstrap:content-projected(seed={seed})",
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        onnx.save(item_tower_graph(projection), str(tmp / "item_tower.onnx"))
        onnx.save(user_tower_graph(projection), str(tmp / "user_tower.onnx"))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        os.rename(tmp, out_dir)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out_dir / "meta.json").is_file():
            raise
    return out_dir


def _configured_folder(settings: Settings, encoder_id: str) -> Path:
    """The folder of ``settings.versions.bootstrap_model``: a version folder, or a checkpoint exported."""
    source = Path(settings.versions.bootstrap_model)
    if source.is_dir():
        return source
    from learnrec.versions.export import export_checkpoint  # torch: only for a checkpoint

    return export_checkpoint(source, settings.versions.model_dir, encoder_id, f"bootstrap:checkpoint({source})")


def build_bootstrap(settings: Settings, encoder_id: str, content_dim: int) -> Path:
    """The bootstrap version folder for this encoder, written if needed."""
    if settings.versions.bootstrap_model:
        return _configured_folder(settings, encoder_id)
    version = bootstrap_version_id(encoder_id, content_dim, settings.versions.bootstrap_output_dim, settings.versions.bootstrap_seed)
    return export_content_projected(
        settings.versions.model_dir / version,
        encoder_id,
        content_dim,
        settings.versions.bootstrap_output_dim,
        settings.versions.bootstrap_seed,
        settings.stream.history_length,
    )


def ensure_current_version(
    settings: Settings, registry: ModelRegistry, encoder_id: str, content_dim: int, wait_s: float = 120.0
) -> str:
    """The current version; when there is none (a new or a wiped Redis), restore the one the
    registry's durable record names (:func:`learnrec.versions.record.restore`), else publish the
    bootstrap version.

    One process publishes (it holds the bootstrap lock); others wait for ``current`` to appear.
    """
    deadline = time.monotonic() + wait_s
    lock = registry.keys.model_lock("bootstrap")
    while (current := registry.current()) is None:
        if registry.redis.set(lock, "1", nx=True, ex=BOOTSTRAP_LOCK_TTL_S):
            try:
                if record.restore(registry, encoder_id, content_dim) is not None:
                    continue
                info = registry.register(build_bootstrap(settings, encoder_id, content_dim))
                if (info.encoder, info.content_dim) != (encoder_id, content_dim):
                    raise VersionError(
                        f"bootstrap version {info.version} is for encoder {info.encoder} "
                        f"({info.content_dim}-d), not {encoder_id} ({content_dim}-d)"
                    )
                registry.publish(info.version)
                log.info("published bootstrap model version %s (%s)", info.version, info.source)
            finally:
                registry.redis.delete(lock)
        elif time.monotonic() > deadline:
            raise VersionError("no current model version and the bootstrap lock is held elsewhere")
        else:
            time.sleep(0.2)
    return current

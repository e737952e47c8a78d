"""ONNX Runtime path of the frozen content encoder (``LEARNREC_ENCODER_RUNTIME=onnx|onnx-int8``).

The Hugging Face model and ContentEncoder's pooling (:func:`~learnrec.shared.model.encoder.mean_pool`)
are exported once into one graph, ``input_ids``, ``attention_mask`` int64 [b, t] ->
``embedding`` float32 [b, D], cached as ``<cache_dir>/<model>-<hash of model id>-<variant>/
model.onnx``; a folder is built under a temporary name and renamed into place, so no process
reads a half-written model. BERT graphs get ONNX Runtime's transformer fusions (Attention,
SkipLayerNormalization, ...). Variants:

- ``fp32``: the same vectors as the torch fp32 path (cosine > .9999);
- ``int8``: dynamic quantisation of the fp32 graph (QInt8 weights per output channel, uint8
  activations quantised per batch) of the attention and MatMul weights, except the
  feed-forward down projections (weights with more inputs than outputs), which stay fp32:
  the most sensitive group measured, quantising them too took MiniLM's lowest per-item
  cosine to fp32 from .994 to .987 (docs/MODEL.md).

Tokenisation, length-sorted batching and padding are ContentEncoder's (this class extends it),
and so is ``model_id``: int8 vectors are the same model's (cosine >= .99, the same Recall@10
within 2%), as bf16 ones on a GPU are, so versions trained on either runtime's vectors keep
serving and a runtime switch re-encodes nothing. Offline embedding caches that must not mix
runtimes key them apart themselves (``bench.quality --encoder-runtime``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import onnx
import onnxruntime as ort
import torch
from torch import nn

from learnrec.shared.model.encoder import (
    DEFAULT_ENCODER,
    DEFAULT_MAX_TOKENS,
    ContentEncoder,
    mean_pool,
)

RUNTIME_VARIANTS = {"onnx": "fp32", "onnx-int8": "int8"}  # settings.encoder.runtime -> variant
VARIANTS = tuple(RUNTIME_VARIANTS.values())
OPSET = 17
_FUSED_MODEL_TYPES = ("bert",)  # Hugging Face model types ORT's transformer optimizer fuses


class _Pooled(nn.Module):
    """The model then :func:`mean_pool`: ids, mask int64 [b, t] -> float32 [b, D]."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)


def _export_fp32(model: nn.Module, path: Path) -> None:
    """Trace ``model`` + pooling to ``path`` (dynamic batch and length), then fuse if BERT."""
    model.set_attn_implementation("eager")  # the plain pattern ORT's attention fusion knows
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # a padded row: the trace must keep the masking path
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and TorchScript-exporter notices
        torch.onnx.export(
            _Pooled(model).eval(),  # eval: the exporter restores the wrapper's mode after
            (ids, mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
    config = model.config
    if config.model_type in _FUSED_MODEL_TYPES:
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(str(path), model_type="bert", opt_level=0,
                               num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
        fused.save_model_to_file(str(path))


def _quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of ``src`` into ``dst``; down projections stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src)).graph
    dims = {w.name: w.dims for w in graph.initializer}
    down = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in dims
            and dims[n.input[1]][0] > dims[n.input[1]][1]]  # weight [in, out], in > out
    quantize_dynamic(
        src, dst, weight_type=QuantType.QInt8, per_channel=True,
        op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=down,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # types of fused ops' outputs
    )


def _exported(encoder: ContentEncoder, cache_dir: Path, variant: str) -> Path:
    """``model.onnx`` of ``encoder``'s model in ``variant`` from the cache; on a miss exported
    from ``encoder.model`` (int8: quantised from the cached fp32 graph, exported first)."""
    digest = hashlib.sha256(encoder.model_id.encode()).hexdigest()[:12]
    folder = cache_dir / f"{Path(encoder.model_id).name or 'model'}-{digest}-{variant}"
    path = folder / "model.onnx"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=cache_dir))
    try:
        if variant == "int8":
            _quantize_int8(_exported(encoder, cache_dir, "fp32"), tmp / "model.onnx")
        else:
            _export_fp32(encoder.model, tmp / "model.onnx")
        try:
            os.rename(tmp, folder)
        except OSError:  # another process renamed its complete copy first
            if not path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


class OnnxContentEncoder(ContentEncoder):
    """ContentEncoder on ONNX Runtime (CPU). ``encode(texts) -> [n, content_dim]`` float32.

    The torch model is loaded for the tokenizer and, on a cache miss, the export; then
    released. ``threads``: ONNX Runtime intra-op threads.
    """

    def __init__(
        self,
        name_or_path: str = DEFAULT_ENCODER,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        batch_size: int = 64,
        variant: str = "fp32",
        threads: int = 1,
        cache_dir: str | os.PathLike = ".cache/onnx-encoders",
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
        super().__init__(name_or_path, max_tokens, device="cpu", batch_size=batch_size)
        self.variant = variant
        self.path = _exported(self, Path(cache_dir), variant)
        del self.model  # the session replaces it
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.path), options,
                                            providers=["CPUExecutionProvider"])

    def _encode_batch(self, batch: list[list[int]]) -> torch.Tensor:
        """Token id lists (similar lengths) -> [b, content_dim] float32, normalised."""
        ids, mask = self._pad(batch)
        feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0])

"""Encoder throughput: our ContentEncoder (torch, ONNX Runtime fp32 and int8) against
sentence-transformers' ``encode()``.

    python -m bench.encoder_throughput                      # both packaged encoders, CPU
    python -m bench.encoder_throughput --encoders minilm --runtimes torch,onnx-int8
    python -m bench.encoder_throughput --device cuda --n 4000

Same model weights, same texts (item texts of amazon-scientific, or generated ones when the
data folder is absent), same token budget, batch size and threads (torch and ONNX Runtime
intra-op), in one process. The sentence-transformers pipeline is built from the same files
(Transformer + mean Pooling + Normalize), so the vectors must agree too (reported as the max
cosine gap); the ONNX runtimes (CPU only: the default ``--runtimes`` off a CPU is ``torch``)
report their per-item cosines to the torch vectors (fp32 on CPU). Writes
``bench/results/encoder-throughput-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from learnrec.shared.model.encoder import ContentEncoder, resolve_encoder
from learnrec.shared.model.onnx_encoder import RUNTIME_VARIANTS, OnnxContentEncoder
from learnrec.trainer.data import data_path, load_dataset

RESULTS = Path(__file__).resolve().parent / "results"
RUNTIMES = ("torch", *RUNTIME_VARIANTS)


def _texts(n: int) -> list[str]:
    path = data_path("amazon-scientific")
    if path.exists():
        texts = load_dataset(path).item_texts
    else:
        words = "sanding roll grit pipette beaker glass flask telescope tripod clamp".split()
        rng = np.random.default_rng(0)
        texts = [f"Title: {' '.join(rng.choice(words, size=rng.integers(4, 30)))}" for _ in range(n)]
    return (texts * (n // len(texts) + 1))[:n]


def _sentence_transformer(source: str, max_tokens: int, device: str):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    kwargs: dict = {}
    where = source
    if source.endswith(".gguf"):
        where = str(Path(source).parent)
        kwargs = {"model_kwargs": {"gguf_file": Path(source).name},
                  "processor_kwargs": {"gguf_file": Path(source).name},
                  "config_kwargs": {"gguf_file": Path(source).name}}
    body = Transformer(where, max_seq_length=max_tokens, **kwargs)
    tok = body.tokenizer if hasattr(body, "tokenizer") else body.processor
    if getattr(tok, "pad_token", "x") is None:
        tok.pad_token = tok.eos_token
    pooling = Pooling(body.get_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[body, pooling, Normalize()], device=device)
    if device.startswith("cuda"):
        model = model.to(torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return model


def _timed(fn, texts):
    fn(texts[:64])  # warm-up: lazy inits, kernel selection
    start = time.perf_counter()
    out = fn(texts)
    return out, len(texts) / (time.perf_counter() - start)


def bench(name: str, texts: list[str], device: str, batch_size: int, max_tokens: int,
          runtimes: tuple[str, ...] = ("torch",), threads: int = 1, rounds: int = 3) -> dict:
    """Sentence-transformers and each of our ``runtimes`` loaded side by side and timed in
    alternation, ``rounds`` times each, so none profits from another's warm caches or suffers
    the machine's noise alone; medians reported. The torch fields (``ours_*``, ``ratio``,
    ``max_cosine_gap``) keep their names; every runtime is also under ``runtimes``."""
    ours = ContentEncoder(name, max_tokens=max_tokens, device=device, batch_size=batch_size)
    entry: dict = {"encoder": ours.model_id, "content_dim": ours.content_dim, "rounds": rounds}
    reference = ours.encode(texts)
    pipelines, failed = {}, {}
    for runtime in runtimes:
        try:
            pipelines[runtime] = ours.encode if runtime == "torch" else OnnxContentEncoder(
                name, max_tokens=max_tokens, batch_size=batch_size,
                variant=RUNTIME_VARIANTS[runtime], threads=threads).encode
        except Exception as err:  # noqa: BLE001 -- recorded in the result: it cannot export
            failed[runtime] = {"error": f"{type(err).__name__}: {err}"}
    try:
        st = _sentence_transformer(resolve_encoder(name), max_tokens, device)
        pipelines["sentence-transformers"] = lambda t: st.encode(
            t, batch_size=batch_size, convert_to_numpy=True).astype(np.float32)
    except Exception as err:  # noqa: BLE001 -- recorded in the result: ST cannot load it
        entry["sentence_transformers_error"] = f"{type(err).__name__}: {err}"

    runs: dict[str, list[float]] = {label: [] for label in pipelines}
    vectors: dict[str, np.ndarray] = {}
    for _ in range(rounds):
        for label, encode in pipelines.items():
            vectors[label], ips = _timed(encode, texts)
            runs[label].append(ips)
    ips = {label: float(np.median(r)) for label, r in runs.items()}
    st_ips = ips.pop("sentence-transformers", None)
    cosines = {label: np.sum(reference * v, axis=1) for label, v in vectors.items()}
    entry["runtimes"] = failed | {
        label: {"items_per_s": round(v, 1),
                **({"ratio": round(v / st_ips, 3)} if st_ips else {}),
                "cosine_min": float(cosines[label].min()),
                "cosine_median": float(np.median(cosines[label]))}
        for label, v in ips.items()}
    if st_ips:
        entry["sentence_transformers_items_per_s"] = round(st_ips, 1)
    if "torch" in ips:
        entry["ours_items_per_s"] = round(ips["torch"], 1)
        if st_ips:
            gap = 1.0 - cosines["sentence-transformers"]
            entry |= {"ratio": round(ips["torch"] / st_ips, 3), "max_cosine_gap": float(gap.max())}
    return entry


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="minilm,smollm2")
    parser.add_argument("--n", type=int, default=1000, help="texts per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runtimes", default=None,
                        help="comma-separated, of " + ", ".join(RUNTIMES)
                        + " (default: all on CPU, torch elsewhere)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    texts = _texts(args.n)
    runtimes = tuple((args.runtimes or (",".join(RUNTIMES) if args.device == "cpu" else "torch"))
                     .split(","))
    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "n_texts": len(texts),
        "batch_size": args.batch_size,
        "max_tokens": args.max_tokens,
        "encoders": [bench(e, texts, args.device, args.batch_size, args.max_tokens, runtimes,
                           args.threads, args.rounds) for e in args.encoders.split(",")],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "cpu" if args.device == "cpu" else "gpu"
    (args.out / f"encoder-throughput-{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

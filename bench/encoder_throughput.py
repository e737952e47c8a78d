"""Encoder throughput: our ContentEncoder against sentence-transformers' ``encode()``.

    python -m bench.encoder_throughput                      # both packaged encoders, CPU
    python -m bench.encoder_throughput --device cuda --n 4000

Same model weights, same texts (item texts of amazon-scientific, or generated ones when the
data folder is absent), same token budget, batch size and torch threads, in one process. The
sentence-transformers pipeline is built from the same files (Transformer + mean Pooling +
Normalize), so the vectors must agree too (reported as the max cosine gap). Writes
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

from shared.model.encoder import ContentEncoder, resolve_encoder
from trainer.data import data_path, load_dataset

RESULTS = Path(__file__).resolve().parent / "results"


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
          rounds: int = 3) -> dict:
    """Both pipelines loaded side by side and timed in alternation, ``rounds`` times each, so
    neither profits from the other's warm caches or suffers the machine's noise alone;
    medians reported."""
    ours = ContentEncoder(name, max_tokens=max_tokens, device=device, batch_size=batch_size)
    entry = {"encoder": ours.model_id, "content_dim": ours.content_dim}
    try:
        st = _sentence_transformer(resolve_encoder(name), max_tokens, device)
    except Exception as err:  # noqa: BLE001 -- recorded in the result: ST cannot load it
        _, ours_ips = _timed(ours.encode, texts)
        return {**entry, "ours_items_per_s": round(ours_ips, 1),
                "sentence_transformers_error": f"{type(err).__name__}: {err}"}

    def st_encode(t: list[str]) -> np.ndarray:
        return st.encode(t, batch_size=batch_size, convert_to_numpy=True).astype(np.float32)

    ours_runs, st_runs = [], []
    for _ in range(rounds):
        a, ips = _timed(ours.encode, texts)
        ours_runs.append(ips)
        b, ips = _timed(st_encode, texts)
        st_runs.append(ips)
    ours_ips, st_ips = float(np.median(ours_runs)), float(np.median(st_runs))
    gap = float(np.max(1.0 - np.sum(a * b, axis=1)))
    return {
        **entry,
        "rounds": rounds,
        "ours_items_per_s": round(ours_ips, 1),
        "sentence_transformers_items_per_s": round(st_ips, 1),
        "ratio": round(ours_ips / st_ips, 3),
        "max_cosine_gap": gap,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", default="minilm,smollm2")
    parser.add_argument("--n", type=int, default=1000, help="texts per run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    texts = _texts(args.n)
    result = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "n_texts": len(texts),
        "batch_size": args.batch_size,
        "max_tokens": args.max_tokens,
        "encoders": [bench(e, texts, args.device, args.batch_size, args.max_tokens)
                     for e in args.encoders.split(",")],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    tag = "cpu" if args.device == "cpu" else "gpu"
    (args.out / f"encoder-throughput-{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()

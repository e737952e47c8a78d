"""A small, deterministic content encoder for tests: no model download, answers in microseconds,
and titles that share words get similar embeddings, so the expected recommendations are known."""

from __future__ import annotations

import hashlib
import re

import numpy as np


class BagOfWordsEncoder:
    """Text -> L2-normalised sum of one seeded random unit vector per word ``[content_dim]``."""

    def __init__(self, content_dim: int = 64) -> None:
        self.content_dim = content_dim
        self.model_id = f"test-bag-of-words-{content_dim}"

    def encode(self, texts: list[str]) -> np.ndarray:
        """``texts`` (n) -> ``[n, content_dim]`` float32, unit rows."""
        rows = np.zeros((len(texts), self.content_dim))
        for n, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()) or [""]:
                seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
                rows[n] += np.random.default_rng(seed).standard_normal(self.content_dim)
            rows[n] /= np.linalg.norm(rows[n]) or 1.0
        return rows.astype(np.float32)

"""Helpers for the stream tests: a stand-in content encoder and event producers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable

import numpy as np

from learnrec.shared.config import Settings
from learnrec.shared.kafka_io import make_producer
from learnrec.shared.schemas import InteractionEvent, ItemEvent
from learnrec.shared.topics import INTERACTIONS, ITEMS, topic_name


class HashEncoder:
    """Deterministic stand-in for ContentEncoder: text -> seeded unit vector ``[content_dim]``."""

    def __init__(self, content_dim: int = 16) -> None:
        self.content_dim = content_dim
        self.model_id = f"test-hash-{content_dim}"
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.content_dim)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, np.float32).reshape(len(texts), self.content_dim)


def produce(settings: Settings, events: Iterable[ItemEvent | InteractionEvent], raw: Iterable[tuple[str, bytes, bytes]] = ()) -> None:
    """Send events to their topics (``raw``: extra (topic base, key, value) records), then flush."""
    producer = make_producer(settings)
    for event in events:
        base = ITEMS if isinstance(event, ItemEvent) else INTERACTIONS
        producer.send(topic_name(settings, base), key=event.key, value=event.to_bytes())
    for base, key, value in raw:
        producer.send(topic_name(settings, base), key=key, value=value)
    producer.flush()
    producer.close()


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0, every_s: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or the time is up; returns whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return condition()


def save_tiny_encoder(folder) -> str:
    """A tiny randomly initialised BERT and its word-level tokenizer saved to ``folder``: the
    real ContentEncoder loading code runs on it in a fraction of a second. Returns the path."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = "title brand category description caliper drill glass beaker acme tools item".split()
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", *words])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64)
    BertModel(config).save_pretrained(folder)
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)
    return str(folder)

"""Item encoder worker (``learnrec stream items``): item events -> content embeddings -> vectors.

Per polled batch (the :class:`~learnrec.shared.worker.BatchWorker` loop does polling, dead letters and
committing after this handler returned):

1. keep the latest event per item (a batch may hold several versions of one item);
2. build the LEARN item text and its content hash (encoder id + text); items whose stored hash
   is the same are not encoded again;
3. encode the rest with the frozen encoder, in batches;
4. write everything through :class:`~learnrec.stream.item_store.ItemStore` (one atomic write with the
   vectors of every active model version and the change notifications);
5. take out the items whose latest record is a tombstone (deleted) or an event with
   ``available: false`` (kept, not served): :meth:`~learnrec.stream.item_store.ItemStore.remove`.

Re-delivered events therefore have a single effect: same text, same hash, nothing written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from prometheus_client import Counter, Histogram

from learnrec.shared.config import Settings
from learnrec.shared.model.item_text import item_text
from learnrec.shared.schemas import ItemEvent, ItemRemoved
from learnrec.shared.worker import Accepted, BatchResult
from learnrec.stream.item_store import EncodedItem, ItemStore, WriteResult

log = logging.getLogger(__name__)

ITEMS = Counter("learnrec_items_total", "Items handled by the item encoder", ["outcome"])
ENCODE_SECONDS = Histogram(
    "learnrec_encode_seconds",
    "Time to encode one batch of item texts with the frozen encoder",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FRESHNESS_SECONDS = Histogram(
    "learnrec_item_freshness_seconds",
    "Seconds from an item event's timestamp (set by its producer) to its vectors written to Redis",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


class TextEncoder(Protocol):
    """What the worker needs of :class:`learnrec.shared.model.encoder.ContentEncoder`."""

    content_dim: int
    model_id: str

    def encode(self, texts: list[str]) -> np.ndarray:
        """``texts`` ``[n]`` -> float32 ``[n, content_dim]``, L2-normalised."""
        ...


def load_encoder(settings: Settings) -> TextEncoder:
    """The frozen content encoder named by ``settings.encoder.name`` (alias, HF name or path) in
    ``settings.encoder.runtime``: torch on ``settings.encoder.threads`` torch threads (a
    process-wide setting), or ONNX Runtime (fp32 or int8) on as many intra-op threads."""
    if settings.encoder.runtime != "torch":
        from learnrec.shared.model.onnx_encoder import RUNTIME_VARIANTS, OnnxContentEncoder

        return OnnxContentEncoder(
            settings.encoder.name,
            max_tokens=settings.encoder.max_tokens,
            batch_size=settings.encoder.batch_size,
            variant=RUNTIME_VARIANTS[settings.encoder.runtime],
            threads=settings.encoder.threads,
            cache_dir=settings.process.cache_dir / "onnx-encoders",
        )
    import torch

    from learnrec.shared.model.encoder import ContentEncoder

    torch.set_num_threads(settings.encoder.threads)
    return ContentEncoder(
        settings.encoder.name,  # an alias stays the model id, the same on every machine
        max_tokens=settings.encoder.max_tokens,
        batch_size=settings.encoder.batch_size,
    )


def content_hash(encoder_id: str, text: str) -> str:
    """Identifies a content embedding: the same text under the same encoder gives the same one."""
    return hashlib.sha256(f"{encoder_id}\n{text}".encode()).hexdigest()[:32]


def item_fields(event: ItemEvent, text: str, encoder_id: str) -> dict[str, str]:
    """The text fields stored in the item hash (absent optional fields are left out)."""
    fields = {"title": event.title, "text": text, "encoder": encoder_id, "updated_at": repr(event.timestamp)}
    optional = {"brand": event.brand, "category": event.category, "description": event.description,
                "price": None if event.price is None else repr(event.price)}
    fields |= {name: value for name, value in optional.items() if value is not None}
    if event.attributes:
        fields["attributes"] = json.dumps(event.attributes, sort_keys=True)
    return fields


class ItemEncoderHandler:
    """The batch handler of the item encoder worker."""

    def __init__(self, encoder: TextEncoder, store: ItemStore, replicated: Callable[[], None] = lambda: None) -> None:
        """``replicated()`` returns once the batch's writes are durable (on a Redis Cluster: on a
        replica, :class:`~learnrec.shared.redis_client.ReplicationBarrier`)."""
        self.encoder = encoder
        self.store = store
        self._replicated = replicated

    def __call__(self, batch: Sequence[Accepted[ItemEvent | ItemRemoved]]) -> BatchResult:
        newest: dict[str, ItemEvent | ItemRemoved] = {}
        for accepted in batch:  # records of one item share a partition, so list order is log order
            newest[accepted.event.item_id] = accepted.event
        ITEMS.labels("superseded").inc(len(batch) - len(newest))
        deleted = [i for i, e in newest.items() if isinstance(e, ItemRemoved)]
        unavailable = [i for i, e in newest.items() if isinstance(e, ItemEvent) and not e.available]
        latest = {i: e for i, e in newest.items() if isinstance(e, ItemEvent) and e.available}
        ids = list(latest)
        texts = {i: item_text(e.title, e.brand, e.category, e.description, e.attributes) for i, e in latest.items()}
        hashes = {i: content_hash(self.encoder.model_id, texts[i]) for i in ids}
        stored = dict(zip(ids, self.store.stored_hashes(ids), strict=True))
        to_encode = [i for i in ids if stored[i] != hashes[i]]
        unchanged = [i for i in ids if stored[i] == hashes[i]]
        content = self._encode([texts[i] for i in to_encode])
        changed = [
            EncodedItem(i, item_fields(latest[i], texts[i], self.encoder.model_id), hashes[i], vector)
            for i, vector in zip(to_encode, content, strict=True)
        ]
        result = self.store.write(changed, unchanged) if ids else WriteResult()
        written_at = time.time()
        for item in changed:  # the producer's clock may run ahead of ours: never negative
            FRESHNESS_SECONDS.observe(max(0.0, written_at - latest[item.item_id].timestamp))
        self.store.remove(deleted, unavailable)
        self._replicated()
        ITEMS.labels("encoded").inc(len(changed))
        ITEMS.labels("unchanged").inc(len(unchanged))
        ITEMS.labels("deleted").inc(len(deleted))
        ITEMS.labels("unavailable").inc(len(unavailable))
        log.info(
            "item batch",
            extra={"events": len(batch), "encoded": len(changed), "unchanged": len(unchanged),
                   "deleted": len(deleted), "unavailable": len(unavailable), "announced": result.announced},
        )
        return BatchResult()

    def _encode(self, texts: list[str]) -> np.ndarray:
        """``texts`` ``[n]`` -> float32 ``[n, content_dim]`` (empty input, empty output)."""
        if not texts:
            return np.zeros((0, self.encoder.content_dim), np.float32)
        started = time.perf_counter()
        content = np.asarray(self.encoder.encode(texts), np.float32)
        ENCODE_SECONDS.observe(time.perf_counter() - started)
        return content

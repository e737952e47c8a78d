"""``learnrec replay``: prequential evaluation of online learning on a real data set via Kafka.

1. The data set becomes a time-ordered interaction stream: ml-100k (RecBole files) and JSON-lines
   logs by timestamp; amazon-scientific, which has order but no time, by giving each user's
   sequence sorted uniform random times (seeded), so users interleave over the whole stream.
2. Items are encoded once by the frozen content encoder (on-disk embedding cache).
3. Offline model: the trainer's own step (same towers, same dense all-action loss) for
   ``--offline-epochs`` epochs over the users' sequences in the first ``--offline-fraction`` of
   the stream, each sequence cut at random points into history and targets.
4. The stream is produced to a fresh one-partition topic (one partition keeps the global time
   order) and consumed back. For every ``--score-every``-th interaction, first the served
   models rank all items for the user's history so far (the item the user saw already are
   excluded); a hit is the true item in the top 10. Then the online trainer learns from it.
   - online: the offline model updated by :class:`~trainer.online.OnlineTrainer`; it serves
     the snapshot taken at its last publish, every ``--publish-every`` events (the live
     system's version cadence, in stream events instead of seconds);
   - frozen: the offline model, never updated;
   - popularity: interaction counts so far.
5. Output: ``prequential-<dataset>.json`` (recall@10 over the second half of the scored
   stream, per method, and the windowed curve) and a PNG plot.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from shared.config import Settings
from shared.kafka_io import ensure_topics, make_producer
from shared.model.towers import LearnModel
from shared.schemas import InteractionEvent, decode_interaction_event
from shared.topics import INTERACTIONS, topic_name
from trainer.content import ContentTable
from trainer.data import SeqDataset, load_dataset
from trainer.examples import collate
from trainer.online import OnlineTrainer, TrainConfig

log = logging.getLogger(__name__)

K = 10


@dataclass(frozen=True)
class StreamEvent:
    user: str
    item: int  # index into the data set's items
    time: float


def event_times(path: Path, ds: SeqDataset, seed: int = 0) -> list[np.ndarray]:
    """Per user (in ``ds.user_ids`` order) the times of their sequence's events, float64 [len].

    RecBole ``.inter`` and JSON-lines files carry Unix timestamps; data without them (UniSRec)
    get sorted uniform random times in [0, 1), seeded.
    """
    times: dict[str, list[float]] = {u: [] for u in ds.user_ids}
    if path.is_file():
        for line in path.open("rb"):
            try:
                event = decode_interaction_event(line.strip())
            except ValueError:
                continue
            times[event.user_id].append(event.timestamp)
    elif inters := [p for p in path.glob("*.inter") if not p.name.endswith((".train.inter", ".valid.inter", ".test.inter"))]:
        lines = inters[0].read_text().splitlines()
        cols = [h.split(":")[0] for h in lines[0].split("\t")]
        u, t = cols.index("user_id"), cols.index("timestamp")
        for line in lines[1:]:
            row = line.split("\t")
            times[row[u]].append(float(row[t]))
    else:
        rng = np.random.default_rng(seed)
        return [np.sort(rng.random(len(s))) for s in ds.sequences]
    # the loaders order each user's events by (time, file order): a stable sort does the same
    return [np.sort(np.asarray(times[u], np.float64), kind="stable") for u in ds.user_ids]


def time_ordered(ds: SeqDataset, times: list[np.ndarray]) -> list[StreamEvent]:
    """Every interaction of ``ds`` as one stream, by time (ties: user order, then position)."""
    events = [
        StreamEvent(user, int(item), float(t))
        for user, seq, ts in zip(ds.user_ids, ds.sequences, times, strict=True)
        for item, t in zip(seq, ts, strict=True)
    ]
    return sorted(events, key=lambda e: e.time)


def content_embeddings(settings: Settings, texts: list[str]) -> tuple[np.ndarray, str]:
    """Content float32 ``[n_items, content_dim]`` from the configured encoder (cached on disk)."""
    from shared.model.encoder import ContentEncoder, EmbeddingCache

    encoder = ContentEncoder(settings.encoder, max_tokens=settings.encoder_max_tokens,
                             device="cpu", batch_size=settings.encoder_batch_size)
    cache = EmbeddingCache(settings.cache_dir / "embeddings")
    return cache.encode(encoder, texts, progress=True), encoder.model_id


def pretrain(
    trainer: OnlineTrainer, sequences: list[list[str]], epochs: int, seed: int = 0, cuts_per_item: float = 0.5
) -> None:
    """Offline training: per epoch, every sequence is cut at ``cuts_per_item`` of its points
    (at least one), drawn at random, into (history, targets), in shuffled mini-batches."""
    rng = np.random.default_rng(seed)
    cfg = trainer.cfg
    usable = [s for s in sequences if len(s) >= 2]
    for epoch in range(epochs):
        examples = []
        for seq in usable:
            cuts = rng.choice(np.arange(1, len(seq)), size=max(1, round(cuts_per_item * (len(seq) - 1))), replace=False)
            examples += [(seq[:cut], seq[cut:]) for cut in cuts]
        order = rng.permutation(len(examples))
        losses = []
        for start in range(0, len(order), cfg.batch_size):
            batch = collate([examples[i] for i in order[start : start + cfg.batch_size]],
                            trainer.content, cfg.history_len, cfg.max_targets)
            if batch is not None and len(batch) >= 2:
                losses.append(trainer.step(batch))
        log.info("offline epoch %d: %d examples, loss %.4f", epoch + 1, len(examples), float(np.mean(losses)))


class ServedModel:
    """A model snapshot and its item vectors ``[n_items, out]``, scoring users in batches."""

    def __init__(self, model: LearnModel, content: torch.Tensor) -> None:
        self.model = copy.deepcopy(model).eval()
        with torch.no_grad():
            self.items = torch.cat([self.model.item_tower(c) for c in content.split(4096)])

    @torch.no_grad()
    def scores(self, history: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``history`` content [B, H, D], ``mask`` [B, H] -> scores [B, n_items]."""
        return self.model.user_tower(history, mask) @ self.items.T


@dataclass
class Tally:
    """Hits per method over the scored events, in order."""

    hits: dict[str, list[bool]] = field(default_factory=lambda: {"online": [], "frozen": [], "popularity": []})

    def recall(self, method: str, start: int = 0, end: int | None = None) -> float:
        window = self.hits[method][start:end]
        return float(np.mean(window)) if window else float("nan")


class Prequential:
    """Scores each (sampled) event with every method before the online trainer learns it."""

    def __init__(self, trainer: OnlineTrainer, frozen: ServedModel, content: torch.Tensor,
                 item_ids: list[str], publish_every: int, score_every: int) -> None:
        self.trainer = trainer
        self.frozen = frozen
        self.content = content  # [n_items, D]
        self.index = {item: i for i, item in enumerate(item_ids)}
        self.online = ServedModel(trainer.model, content)
        self.publish_every = publish_every
        self.score_every = score_every
        self.popularity = np.zeros(len(item_ids), np.float64)
        self.seen: dict[str, list[int]] = {}
        self.tally = Tally()
        self.consumed = 0
        self.since_publish = 0

    def process(self, events: list[InteractionEvent]) -> None:
        """Score the batch's sampled events (each against its history so far), then train."""
        queries: list[tuple[list[int], int]] = []
        for event in events:
            item = self.index[event.item_id]
            history = self.seen.setdefault(event.user_id, [])
            if self.consumed % self.score_every == 0 and history:
                queries.append((list(history), item))
                self._score_popularity(history, item)
            history.append(item)
            self.popularity[item] += 1
            self.consumed += 1
        if queries:
            self._score_models(queries)
        self.trainer.add(events)
        self.since_publish += len(events)
        if self.since_publish >= self.publish_every:
            self.trainer.flush()
            self.online = ServedModel(self.trainer.model, self.content)
            self.since_publish = 0

    def _score_popularity(self, history: list[int], item: int) -> None:
        scores = self.popularity.copy()
        scores[history] = -1
        top = np.argpartition(-scores, K)[:K]
        self.tally.hits["popularity"].append(bool(item in top and scores[item] > 0))

    def _score_models(self, queries: list[tuple[list[int], int]]) -> None:
        h = self.trainer.cfg.history_len
        rows = [q[-h:] for q, _ in queries]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = True
        history = self.content[ids]  # [B, H, D]
        targets = torch.tensor([t for _, t in queries])
        for name, served in (("online", self.online), ("frozen", self.frozen)):
            scores = served.scores(history, mask)
            for i, (seen, _) in enumerate(queries):
                scores[i, seen] = -torch.inf
            top = scores.topk(K, dim=1).indices
            self.tally.hits[name].extend((top == targets[:, None]).any(dim=1).tolist())


def _produce(settings: Settings, topic: str, stream: list[StreamEvent], item_ids: list[str], name: str) -> None:
    producer = make_producer(settings, linger_ms=50, batch_size=256 * 1024)
    for n, e in enumerate(stream):
        event = InteractionEvent(event_id=f"{name}-{n}", user_id=e.user, item_id=item_ids[e.item],
                                 action="rate", timestamp=max(e.time, 0.0))
        producer.send(topic, key=event.key, value=event.to_bytes())
    producer.flush()
    producer.close()


def _consume(settings: Settings, topic: str, total: int, on_batch, batch_size: int) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                             enable_auto_commit=False, client_id="learnrec-replay")
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    done = 0
    last_log = time.monotonic()
    try:
        while done < total:
            for records in consumer.poll(timeout_ms=500, max_records=batch_size).values():
                on_batch([decode_interaction_event(r.value) for r in records])
                done += len(records)
            if time.monotonic() - last_log > 15:
                last_log = time.monotonic()
                log.info("replay: %d / %d events", done, total)
    finally:
        consumer.close()


def curve(tally: Tally, points: int = 40) -> list[dict]:
    """Recall@10 per method in ``points`` consecutive windows of the scored events."""
    n = len(tally.hits["online"])
    edges = np.linspace(0, n, points + 1).astype(int)
    return [
        {"scored_from": int(a), "scored_to": int(b)} | {m: round(tally.recall(m, a, b), 5) for m in tally.hits}
        for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a
    ]


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [(p["scored_from"] + p["scored_to"]) / 2 for p in result["curve"]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for method, style in (("online", "-"), ("frozen", "--"), ("popularity", ":")):
        ax.plot(x, [p[method] for p in result["curve"]], style, label=method)
    ax.axvline(len(result["curve"]) and result["curve"][-1]["scored_to"] / 2, color="grey", lw=0.5)
    ax.set_xlabel("scored interactions (stream order)")
    ax.set_ylabel("Recall@10 (window)")
    ax.set_title(f"Prequential replay: {result['dataset']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def replay(settings: Settings, data: Path, out_dir: Path, *, offline_fraction: float, offline_epochs: int,
           offline_cuts: float, publish_every: int, score_every: int, max_events: int | None = None) -> dict:
    """Run the whole experiment; returns the result dict (also written as JSON + PNG)."""
    torch.set_num_threads(settings.trainer_threads)
    torch.manual_seed(settings.trainer_seed)
    started = time.perf_counter()
    ds = load_dataset(data)
    stream = time_ordered(ds, event_times(data, ds, settings.trainer_seed))[:max_events]
    content_np, encoder = content_embeddings(settings, ds.item_texts)
    content = torch.from_numpy(content_np)
    table = ContentTable(content_np.shape[1])
    table.update(ds.item_ids, content_np)

    cfg = TrainConfig.from_settings(settings)
    trainer = OnlineTrainer.from_scratch(table, cfg, encoder)
    n_offline = int(offline_fraction * len(stream))
    prefix: dict[str, list[str]] = {}
    for e in stream[:n_offline]:
        prefix.setdefault(e.user, []).append(ds.item_ids[e.item])
    pretrain(trainer, list(prefix.values()), offline_epochs, settings.trainer_seed, offline_cuts)
    frozen = ServedModel(trainer.model, content)
    # The online trainer continues from the offline model and optimizer, and knows the users'
    # offline-period sequences.
    for user, seq in prefix.items():
        for item in seq:
            trainer.replay.offer(trainer.sequences.append(user, item))
    evaluation = Prequential(trainer, frozen, content, ds.item_ids, publish_every, score_every)
    for e in stream[:n_offline]:  # warm popularity and the seen items with the offline period
        evaluation.popularity[e.item] += 1
        evaluation.seen.setdefault(e.user, []).append(e.item)
        evaluation.consumed += 1
    offline_s = time.perf_counter() - started

    run_settings = settings.model_copy(update={"topic_prefix": f"replay-{ds.name}-{secrets.token_hex(3)}.", "partitions": 1})
    topic = topic_name(run_settings, INTERACTIONS)
    ensure_topics(run_settings, partitions=1)
    online_part = stream[n_offline:]
    _produce(run_settings, topic, online_part, ds.item_ids, ds.name)
    replay_started = time.perf_counter()
    _consume(run_settings, topic, len(online_part), evaluation.process, cfg.batch_size)
    evaluation.trainer.flush()
    replay_s = time.perf_counter() - replay_started

    tally = evaluation.tally
    n = len(tally.hits["online"])
    result = {
        "dataset": ds.name,
        "events": len(stream),
        "offline_events": n_offline,
        "replayed_events": len(online_part),
        "scored_events": n,
        "score_every": score_every,
        "publish_every_events": publish_every,
        "offline": {"fraction": offline_fraction, "epochs": offline_epochs, "cuts_per_item": offline_cuts},
        "encoder": encoder,
        "second_half_recall@10": {m: round(tally.recall(m, n // 2), 5) for m in tally.hits},
        "recall@10": {m: round(tally.recall(m), 5) for m in tally.hits},
        "curve": curve(tally),
        "seconds": {"offline": round(offline_s, 1), "replay": round(replay_s, 1)},
        "trained_events_per_s_in_replay": round(len(online_part) / replay_s, 1),
        "settings": {k: v for k, v in settings.model_dump().items() if k.startswith("trainer_") and k != "trainer_checkpoint"}
        | {"encoder": settings.encoder},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"prequential-{ds.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, out_dir / f"prequential-{ds.name}.png")
    log.info("replay of %s: second-half recall@10 %s", ds.name, result["second_half_recall@10"])
    return result


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="a data set name under ../shared/data (ml-100k, amazon-scientific), a folder, or a .jsonl file")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--offline-fraction", type=float, default=0.25, help="first part of the stream the offline model trains on")
    parser.add_argument("--offline-epochs", type=int, default=4)
    parser.add_argument("--offline-cuts", type=float, default=0.5, help="training cuts per item of a sequence, per epoch")
    parser.add_argument("--publish-every", type=int, default=1000, help="events between published versions")
    parser.add_argument("--score-every", type=int, default=1, help="score every k-th interaction")
    parser.add_argument("--max-events", type=int, default=None, help="replay only the first N events")
    parser.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    from shared.config import get_settings
    from trainer.data import data_path

    path = Path(args.dataset)
    data = path if path.exists() else data_path(args.dataset)
    result = replay(get_settings(), data, args.out, offline_fraction=args.offline_fraction,
                    offline_epochs=args.offline_epochs, offline_cuts=args.offline_cuts, publish_every=args.publish_every,
                    score_every=args.score_every, max_events=args.max_events)
    print(json.dumps(result["second_half_recall@10"]))
    return 0

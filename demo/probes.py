"""Observers the demo runs beside the system: freshness, model versions, consumer-group
offsets, serving calls, new items recommended, users' examples, dead letters."""

from __future__ import annotations

import threading
import time
from collections import Counter

import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from learnrec.client import ClientError, Recommendations, RecommendationsClient
from learnrec.demo.metrics import ColdStartExample, DemoMetrics, UserExample
from learnrec.shared.config import Settings
from learnrec.shared.dead_letter import DeadLetter
from learnrec.shared.kafka_io import kafka_security
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.topics import DEAD_LETTER, topic_name


class GroupOffsets:
    """A consumer group's committed offsets on one topic, read without joining the group (a
    consumer that names the group but never subscribes only reads its commits)."""

    def __init__(self, settings: Settings, group: str, topic: str) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=settings.connection.kafka_bootstrap_servers, group_id=group,
                                       enable_auto_commit=False, **kafka_security(settings))
        self.partitions = [TopicPartition(topic, p) for p in self._consumer.partitions_for_topic(topic) or []]

    def committed(self) -> dict[TopicPartition, int]:
        return {tp: self._consumer.committed(tp) or 0 for tp in self.partitions}

    def ends(self) -> dict[TopicPartition, int]:
        return self._consumer.end_offsets(self.partitions)

    def close(self) -> None:
        self._consumer.close()


class AnnouncementWatcher(threading.Thread):
    """Tails the item-updates Redis Stream; the first announcement of a published item gives
    its freshness (publish -> vector readable and announced). Also tracks the current version
    and, when it changes, how many interactions the trainer had consumed (``trainer``)."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, metrics: DemoMetrics, trainer: GroupOffsets) -> None:
        super().__init__(name="announcement-watcher", daemon=True)
        self._redis = client
        self._keys = keys
        self._metrics = metrics
        self._trainer = trainer
        self._published: dict[str, float] = {}
        self.announced: dict[str, float] = {}  # item_id -> wall time of its first announcement
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # not _stop: Thread.join calls its own _stop()
        self.current_version: str | None = None

    def expect(self, item_id: str, published_at: float) -> None:
        with self._lock:
            self._published[item_id] = published_at

    def run(self) -> None:
        last_id = b"0-0"
        next_version_check = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_version_check:
                self._check_version()
                next_version_check = now + 0.5
            reply = self._redis.xread({self._keys.item_updates(): last_id}, count=1000, block=200)
            seen_at = time.time()
            for _stream, entries in reply or []:
                for entry_id, fields in entries:
                    last_id = entry_id
                    item_id = fields.get(b"item_id", b"").decode()
                    with self._lock:
                        published = self._published.pop(item_id, None)
                        if item_id not in self.announced:
                            self.announced[item_id] = seen_at
                    if published is not None:
                        self._metrics.add("freshness_ms", (seen_at - published) * 1000.0)

    def _check_version(self) -> None:
        raw = self._redis.get(self._keys.model_current())
        version = raw.decode() if raw else None
        if version and version != self.current_version:
            self.current_version = version
            self._metrics.add("versions", (self._metrics.interactions_published, version))
            try:
                self._metrics.trainer_consumed[version] = sum(self._trainer.committed().values())
            except KafkaError:
                pass  # unknown for this version; the report says so

    def stop(self) -> None:
        self._stopping.set()
        self.join(timeout=5)
        self._trainer.close()


class ServingClient:
    """Looks recommendations up through :mod:`learnrec.client` and records latency and errors
    (no retries: the demo counts every failed request)."""

    def __init__(self, base_url: str, metrics: DemoMetrics) -> None:
        self._client = RecommendationsClient(base_url, timeout_s=5.0, retries=0)
        self._metrics = metrics

    def ready(self) -> bool:
        try:
            return self._client.is_ready()
        except ClientError:
            return False

    def recommend(self, user_id: str, k: int = 10, timed: bool = True) -> Recommendations | None:
        """The API's answer (None on an error); ``timed``: count its latency in the metrics."""
        started = time.perf_counter()
        try:
            answer = self._client.for_user(user_id, k=k)
        except ClientError:
            self._metrics.request_errors += 1
            return None
        if timed:
            self._metrics.add("latency_ms", (time.perf_counter() - started) * 1000.0)
        return answer

    def similar(self, item_id: str, k: int = 10) -> list[str]:
        try:
            return self._client.similar(item_id, k=k).item_ids
        except ClientError:
            return []

    def close(self) -> None:
        self._client.close()


class ColdStartProbe:
    """Just after a new item is announced, asks for the recommendations of users whose last
    click was one of its nearest neighbours: is the new item already among them?"""

    def __init__(self, client: ServingClient, watcher: AnnouncementWatcher, metrics: DemoMetrics,
                 titles: dict[str, str]) -> None:
        self._client = client
        self._watcher = watcher
        self._metrics = metrics
        self._titles = titles
        self._published_at: dict[str, float] = {}  # new items not announced yet
        self._last_click: dict[str, str] = {}      # user -> item

    def published(self, item_id: str, at: float) -> None:
        self._published_at[item_id] = at

    def clicked(self, user_id: str, item_id: str) -> None:
        self._last_click[user_id] = item_id

    def check(self) -> None:
        """Probe every new item announced since the last check."""
        for item_id in [i for i in self._published_at if i in self._watcher.announced]:
            t0 = self._published_at.pop(item_id)
            neighbours = set(self._client.similar(item_id, k=5))
            users = [u for u, last in self._last_click.items() if last in neighbours][:5]
            for user in users:
                answer = self._client.recommend(user, k=10)
                ids = answer.item_ids if answer else []
                if item_id in ids:
                    self._metrics.add("cold_starts", ColdStartExample(
                        item_id=item_id, title=self._titles.get(item_id, item_id), published_at=t0,
                        announced_ms=(self._watcher.announced[item_id] - t0) * 1000.0, user_id=user,
                        rank=ids.index(item_id) + 1, seconds_after_publish=time.time() - t0))
                    break
            else:
                self._metrics.cold_start_misses += 1


def collect_user_examples(client: ServingClient, redis_client: redis.Redis, keys: RedisKeys, metrics: DemoMetrics,
                          titles: dict[str, str], new_items: set[str], count: int) -> None:
    """The recent history and recommendations of the users with the longest histories, and of
    the last users a new item was recommended to."""
    time.sleep(1.0)  # let the history updater apply the last clicks
    users: Counter[str] = Counter()
    for key in redis_client.scan_iter(match=keys.history("*"), count=1000):
        users[key.decode().rsplit(":", 1)[-1]] = redis_client.llen(key)
    cold_users = [ex.user_id for ex in metrics.cold_starts[-2:]]
    chosen = list(dict.fromkeys(cold_users + [u for u, _ in users.most_common(count)]))
    for user in chosen[: count + 2]:
        history = [h.decode() for h in redis_client.lrange(keys.history(user), -8, -1)]
        answer = client.recommend(user, k=10)
        if not answer:
            continue
        recs = answer.item_ids
        metrics.users.append(UserExample(
            user_id=user,
            history=[titles.get(i, i) for i in history],
            recommendations=[titles.get(i, i) for i in recs],
            new_items=[titles.get(i, i) for i in recs if i in new_items],
            version=answer.model_version,
        ))


def count_dead_letters(settings: Settings) -> int:
    """Distinct events in the dead-letter topic (every consumer group that rejects an event
    writes its own record, tagged with its stage)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.connection.kafka_bootstrap_servers, enable_auto_commit=False,
                             **kafka_security(settings))
    try:
        topic = topic_name(settings, DEAD_LETTER)
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        if not partitions:
            return 0
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        sources: set[tuple[str, int, int]] = set()
        deadline = time.monotonic() + 10
        while any(consumer.position(tp) < ends[tp] for tp in partitions) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    letter = DeadLetter.from_record(record)
                    sources.add((letter.source_topic, letter.source_partition, letter.source_offset))
        return len(sources)
    finally:
        consumer.close()

"""A whole learnrec in one process, for integration tests: the item encoder, the history updater
and the online trainer in threads, the serving API on a free port, a producer and a client.

Everything after the content encoder is the production code; the encoder is the caller's (by
default :class:`~learnrec.testing.encoder.BagOfWordsEncoder`). Topics and Redis keys live under
the settings' prefixes, so stacks on one broker and one Redis never see each other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from learnrec.client import EventProducer, NotFound, RecommendationsClient, Unavailable
from learnrec.shared.config import Settings
from learnrec.testing.encoder import BagOfWordsEncoder
from learnrec.testing.live_server import LiveServer, wait_until

log = logging.getLogger(__name__)


class LearnrecStack:
    """Start with :meth:`start` (or ``with``); :attr:`producer` publishes, :attr:`client` looks up."""

    def __init__(self, settings: Settings, encoder: object | None = None, trainer: bool = True) -> None:
        self.settings = settings
        self.encoder = encoder or BagOfWordsEncoder()
        self.with_trainer = trainer
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._workers: list = []
        self._threads: list[threading.Thread] = []
        self._server: LiveServer | None = None
        self.producer: EventProducer
        self.client: RecommendationsClient

    @property
    def url(self) -> str:
        """The serving API's base URL."""
        assert self._server is not None, "start() the stack first"
        return self._server.url

    def start(self) -> LearnrecStack:
        from learnrec.serving.guard import parse_keys
        from learnrec.shared.kafka_io import ensure_topics
        from learnrec.stream.workers import build_history_worker, build_item_worker

        ensure_topics(self.settings)
        self._workers = [build_item_worker(self.settings, self.encoder), build_history_worker(self.settings)]
        for worker in self._workers:
            self._thread(worker.name, worker.run)
        if self.with_trainer:
            self._thread("trainer", self._train)
        self._server = LiveServer(self.settings).__enter__()
        keys = parse_keys(self.settings.serving.api_keys.get_secret_value())
        self.producer = EventProducer(self.settings)
        self.client = RecommendationsClient(self.url, api_key=keys[0].decode() if keys else None,
                                            timeout_s=10.0)
        return self

    def stop(self) -> None:
        """Stop every part; raises the first error a component thread died of."""
        self._stop.set()
        for closing in (self.producer.close, self.client.close):
            closing()
        if self._server is not None:
            self._server.__exit__(None, None, None)
        for worker in self._workers:
            worker.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=30)
        if self.errors:
            raise RuntimeError(f"a learnrec component failed: {self.errors[0]!r}") from self.errors[0]

    def __enter__(self) -> LearnrecStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_until_servable(self, item_id: str, timeout: float = 60.0) -> None:
        """Until serving's current model version can recommend ``item_id`` (it is in the index)."""
        wait_until(lambda: self._servable(item_id), timeout=timeout, every=0.05)

    def wait_until_reflected(self, user_id: str, item_id: str, timeout: float = 60.0) -> None:
        """Until ``item_id`` is in the history that serving reads for ``user_id``."""
        from learnrec.shared.redis_client import make_redis
        from learnrec.shared.redis_keys import RedisKeys

        history = RedisKeys.from_settings(self.settings).history(user_id)
        with make_redis(self.settings) as redis:
            wait_until(lambda: item_id.encode() in redis.lrange(history, 0, -1), timeout=timeout, every=0.05)

    def _servable(self, item_id: str) -> bool:
        try:
            self.client.similar(item_id, k=1)
        except (NotFound, Unavailable):
            return False
        return True

    def _thread(self, name: str, target: Callable[[], object]) -> None:
        def guarded() -> None:
            try:
                target()
            except BaseException as err:  # reported by stop()
                log.exception("%s failed", name)
                self.errors.append(err)

        thread = threading.Thread(target=guarded, name=f"learnrec-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _train(self) -> None:
        """The online trainer, once the first item is encoded (it reads the content dimension)."""
        from learnrec.shared.redis_client import make_redis
        from learnrec.shared.redis_keys import RedisKeys
        from learnrec.trainer.worker import build_trainer_worker

        items = RedisKeys.from_settings(self.settings).items()
        with make_redis(self.settings) as redis:
            while not redis.scard(items):
                if self._stop.wait(0.05):
                    return
        import torch

        torch.set_num_threads(self.settings.trainer.threads)
        worker, loop = build_trainer_worker(self.settings)
        self._workers.append(worker)
        if self._stop.is_set():
            worker.stop_event.set()
        worker.run(after_poll=loop.tick)
        loop.checkpoint()

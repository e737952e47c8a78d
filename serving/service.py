"""The serving runtime: the pieces behind the HTTP API, wired and started together.

Start order matters: the item-update tailer takes the stream's end id before the version manager
starts loading, so every vector written during a load reaches the new index.

After each version swap the process's objects so far (imported modules, the version's index) are
frozen out of the garbage collector (``gc.freeze``): a full collection then walks only what came
after, instead of stalling the event loop for tens of milliseconds (47 ms measured at 100,000
items), which under load turned into a burst of shed requests. One full collection runs first,
once per swap, so that no garbage cycle is frozen (a frozen cycle is never freed).
"""

from __future__ import annotations

import gc

from learnrec.serving.content_cache import ContentCache
from learnrec.serving.metrics import ServingMetrics
from learnrec.serving.model_step import ModelStep
from learnrec.serving.popular import PopularItems
from learnrec.serving.recommender import Recommender
from learnrec.serving.updates import UpdateTailer
from learnrec.serving.versions import ServingVersion, VersionHolder, VersionManager
from learnrec.shared.config import Settings
from learnrec.shared.redis_client import make_async_redis, make_redis
from learnrec.shared.redis_keys import RedisKeys


class ServingService:
    """Version holder, background threads and the recommender of one serving process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        keys = RedisKeys.from_settings(settings)
        self.holder = VersionHolder()
        self.cache = ContentCache(settings.serving.content_cache_items)
        self.metrics = ServingMetrics(self.holder, self.cache)
        # The blocking XREAD and the loaders get their own connections (clients are pools).
        self._sync_redis = make_redis(settings)
        self._async_redis = make_async_redis(settings, timeout_s=2.0)
        self.popular = PopularItems(settings, self._sync_redis)
        self.tailer = UpdateTailer(settings, self._sync_redis, self.holder, self.cache.invalidate)
        self.manager = VersionManager(settings, self._sync_redis, self.holder, self._swapped)
        model_step = ModelStep(settings.serving.max_model_batch, self.metrics.model_batch.observe)
        self.recommender = Recommender(keys, self._async_redis, self.holder, self.cache, self.popular, model_step)

    @property
    def ready(self) -> bool:
        return self.holder.current is not None and self.holder.unavailable is None

    def start(self) -> None:
        self.tailer.start()
        self.popular.start()
        self.manager.start()

    async def stop(self) -> None:
        self.manager.stop()
        self.tailer.stop()
        self.popular.stop()
        await self._async_redis.aclose()
        self._sync_redis.close()

    def _swapped(self, version: ServingVersion) -> None:
        self.metrics.version_swapped(version.version)
        gc.collect()
        gc.freeze()

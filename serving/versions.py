"""Model versions in the serving process: load, index, warm, swap, retire.

A :class:`ServingVersion` bundles what one answer needs from one model version: the ONNX user
tower (loaded through :class:`learnrec.versions.registry.ModelRegistry`) and the index of that
version's item vectors. Requests *pin* the current version for their
whole life (:meth:`VersionHolder.pin_current`), so a user vector is only ever searched against
item vectors of its own version.

:class:`VersionManager` watches ``{p}:model:current``. When it names a version other than the one
serving, the manager loads it on its own thread: user tower session, index built from
``{p}:vectors:{version}`` (HSCAN), a few warm-up inferences and searches; then one assignment under
the holder's lock swaps it in. The previous version is retired: it stops taking new pins and is
closed (session and index released) when its last in-flight request unpins it.

While a version loads it is already *live* for the item-update tailer (``learnrec.serving.updates``),
so vectors written during the scan are not missed; both writers take the version's
``write_lock`` around each read-from-Redis-then-upsert step, which keeps the newest value last.

The manager also watches whether Redis's state is whole: with ``{p}:model:current`` gone (a
wiped Redis) or partitions still being replayed (``{p}:rebuilding``, :mod:`learnrec.shared.rebuild`),
:attr:`VersionHolder.unavailable` says why and every pin raises :class:`NotReady` (a 503)
rather than answering from half a state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import redis

from learnrec.serving import index_store
from learnrec.serving.index import ItemIndex
from learnrec.shared.config import Settings
from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions.registry import ModelRegistry
from learnrec.versions.towers import LoadedVersion

log = logging.getLogger(__name__)

SCAN_BATCH = 2000
WARM_ROUNDS = 3
RETRY_FAILED_LOAD_S = 5.0


class NotReady(RuntimeError):
    """No model version is loaded yet."""


class ServingVersion:
    """One model version: towers + item index + in-flight request count."""

    def __init__(self, towers: LoadedVersion, index: ItemIndex) -> None:
        info = towers.info
        self.version = info.version
        self.content_dim = info.content_dim
        self.output_dim = info.output_dim
        self.max_history = info.max_history
        self.index = index
        self.write_lock = threading.Lock()
        self._towers: ServingVersion | None = towers
        self.in_flight = 0  # guarded by the holder's lock
        self.retired = False

    def user_vectors(self, content: np.ndarray, mask: np.ndarray, item_ids: Sequence[Sequence[str]]) -> np.ndarray:
        """``content`` float32 ``[B, L, content_dim]``, ``mask`` int64 ``[B, L]`` (1 real, right
        padded), ``item_ids`` the B histories -> ``[B, output_dim]`` user vectors (as the version's
        user tower gives them: L2-normalised, with a content blend part when it has one)."""
        assert self._towers is not None, f"version {self.version} is closed"
        return self._towers.user_vectors(content, mask, item_ids)

    def close(self) -> None:
        """Release the sessions and the index (only once nothing uses the version)."""
        self._towers = None
        self.index = ItemIndex(self.output_dim)


class VersionHolder:
    """The current version, versions still loading, and pin counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: ServingVersion | None = None
        self._loading: dict[str, ServingVersion] = {}
        self.unavailable: str | None = None  # why answers would be wrong now (a Redis rebuild)

    @property
    def current(self) -> ServingVersion | None:
        return self._current

    @contextmanager
    def pin_current(self) -> Iterator[ServingVersion]:
        """The current version, kept open until the block ends; raises :class:`NotReady`."""
        with self._lock:
            version = self._current
            if version is None:
                raise NotReady("no model version is loaded yet")
            if self.unavailable is not None:
                raise NotReady(self.unavailable)
            version.in_flight += 1
        try:
            yield version
        finally:
            self._unpin(version)

    @contextmanager
    def pin_live(self, version_id: str) -> Iterator[ServingVersion | None]:
        """The named version if it is current or loading (else None), kept open for the block."""
        with self._lock:
            version = self._loading.get(version_id)
            if version is None and self._current and self._current.version == version_id:
                version = self._current
            if version is not None:
                version.in_flight += 1
        try:
            yield version
        finally:
            if version is not None:
                self._unpin(version)

    def live_ids(self) -> list[str]:
        """The ids of the current version and of the versions loading."""
        with self._lock:
            current = [self._current.version] if self._current else []
            return current + [v for v in self._loading if v not in current]

    def add_loading(self, version: ServingVersion) -> None:
        with self._lock:
            self._loading[version.version] = version

    def drop_loading(self, version: ServingVersion) -> None:
        with self._lock:
            self._loading.pop(version.version, None)

    def swap(self, version: ServingVersion) -> ServingVersion | None:
        """Make ``version`` current; the previous one retires. Returns the previous one."""
        with self._lock:
            self._loading.pop(version.version, None)
            old, self._current = self._current, version
            if old is not None:
                old.retired = True
                idle = old.in_flight == 0
        if old is not None and idle:
            self._close(old)
        return old

    def _unpin(self, version: ServingVersion) -> None:
        with self._lock:
            version.in_flight -= 1
            idle = version.retired and version.in_flight == 0
        if idle:
            self._close(version)

    @staticmethod
    def _close(version: ServingVersion) -> None:
        version.close()
        log.info("retired model version %s", version.version)


def refresh(client: redis.Redis, keys: RedisKeys, version: ServingVersion, item_ids: list[str]) -> int:
    """Bring ``item_ids`` in ``version``'s index in line with its vectors in Redis: upsert the
    ones there, remove the ones without a vector (removed items). Returns how many were upserted."""
    with version.write_lock:
        raw = client.hmget(keys.vectors(version.version), item_ids)
        good, vectors = read_vectors(raw, version.output_dim)
        version.index.upsert([item_ids[i] for i in good], vectors)
        version.index.remove([i for i, blob in zip(item_ids, raw, strict=True) if blob is None])
    return len(good)


def read_vectors(raw: list[bytes | None], dim: int) -> tuple[list[int], np.ndarray]:
    """Positions of the well-formed float32 ``[dim]`` blobs in ``raw`` and their ``[n, dim]`` matrix."""
    size = 4 * dim
    good = [i for i, blob in enumerate(raw) if blob is not None and len(blob) == size]
    matrix = np.frombuffer(b"".join(raw[i] for i in good), dtype=np.float32)  # type: ignore[misc]
    return good, matrix.reshape(len(good), dim)


class VersionManager:
    """Follows ``{p}:model:current``: loads a new version in the background, then swaps it in."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        holder: VersionHolder,
        on_swap: Callable[[ServingVersion], None] = lambda version: None,
    ) -> None:
        self._settings = settings
        self._redis = client
        self._keys = RedisKeys.from_settings(settings)
        self._registry = ModelRegistry.from_settings(settings, client)
        self._holder = holder
        self._on_swap = on_swap
        self._stop = threading.Event()
        self._failed: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="version-manager", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            try:
                self.check()
            except Exception:  # Redis down, a broken version folder: log, keep watching
                log.exception("model version check failed")
            if self._stop.wait(self._settings.serving.version_poll_s):
                return

    def check(self) -> None:
        """Load and swap in the version ``{p}:model:current`` names, if it is a new one; say
        whether Redis's state is whole (see the module docstring)."""
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(self._keys.model_current())
            pipe.hlen(self._keys.rebuilding())
            raw, rebuilding = pipe.execute()
        self._holder.unavailable = (
            "redis lost its state; it is being rebuilt" if raw is None and self._holder.current is not None
            else f"redis is being rebuilt from the logs ({rebuilding} partitions to go)" if rebuilding
            else None
        )
        if raw is None:
            return
        wanted = raw.decode()
        current = self._holder.current
        if current is not None and current.version == wanted:
            return
        if time.monotonic() - self._failed.get(wanted, -RETRY_FAILED_LOAD_S) < RETRY_FAILED_LOAD_S:
            return
        try:
            version = self.load(wanted)
        except Exception:
            self._failed[wanted] = time.monotonic()
            raise
        self._holder.swap(version)
        self._on_swap(version)
        log.info("serving model version %s (%d items)", version.version, len(version.index))

    def load(self, version_id: str) -> ServingVersion:
        """Towers + index + warm-up for ``version_id``; live for item updates while it loads.
        The index comes from the version's snapshot when there is one (:mod:`learnrec.serving.index_store`),
        else from every vector in Redis, and is then saved as the snapshot."""
        started = time.perf_counter()
        towers = self._registry.load_version(version_id)
        folder, dim = towers.info.path, towers.info.output_dim
        options = {"exact_below": self._settings.serving.exact_below, "ef": self._settings.serving.hnsw_ef,
                   "m": self._settings.serving.hnsw_m}
        since = index_store.stream_end(self._redis, self._keys)  # before anything is read
        restored = index_store.restore(self._redis, self._keys, folder, dim, **options)
        version = ServingVersion(towers, restored[0] if restored else ItemIndex(dim, **options))
        self._holder.add_loading(version)
        try:
            if restored:
                named = index_store.named_since(self._redis, self._keys, restored[1])
                for start in range(0, len(named), SCAN_BATCH):
                    refresh(self._redis, self._keys, version, named[start : start + SCAN_BATCH])
            else:
                self._fill(version)
                version.index.wait_built()  # swapped in with its graph, never searching exactly
                if version.index.approximate:
                    index_store.save(version.index, folder, since)
            self._warm(version)
        except BaseException:
            self._holder.drop_loading(version)
            raise
        log.info("loaded model version %s: %d items in %.1f s (%s)", version_id, len(version.index),
                 time.perf_counter() - started, "from its index snapshot" if restored else "built")
        return version

    def _fill(self, version: ServingVersion) -> None:
        key = self._keys.vectors(version.version)
        cursor = 0
        while True:
            with version.write_lock:
                cursor, batch = self._redis.hscan(key, cursor, count=SCAN_BATCH)
                ids = [item_id.decode() for item_id in batch]
                good, vectors = read_vectors(list(batch.values()), version.output_dim)
                version.index.upsert([ids[i] for i in good], vectors)
            if cursor == 0:
                return
            if self._stop.is_set():
                raise RuntimeError("stopped while loading")

    def _warm(self, version: ServingVersion) -> None:
        """Run the tower at a short and the longest history, and a few searches."""
        rng = np.random.default_rng(0)
        for _ in range(WARM_ROUNDS):
            for length in (1, version.max_history):
                content = rng.standard_normal((1, length, version.content_dim), dtype=np.float32)
                user = version.user_vectors(content, np.ones((1, length), dtype=np.int64), [[""] * length])
                version.index.search(user[0], 10)

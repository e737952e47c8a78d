"""Model versions in Redis: which version serves, which are being published, and how to publish.

Keys (see :mod:`learnrec.shared.redis_keys`): ``model:current`` (string), ``model:preparing`` (set),
``model:versions`` (zset, score = publish time), ``model:meta:{v}`` (hash), ``vectors:{v}``
(hash item_id -> float32 bytes ``[output_dim]``).

The publish protocol, and why every committed item has a vector under the current version even
when it arrives during a publish, is written down in ``docs/VERSIONS.md``. In short:

1. :meth:`ModelRegistry.begin_publish` adds the version to ``preparing``; from then on the item
   encoder (which WATCHes ``current`` and ``preparing``) writes vectors for it too;
2. :meth:`ModelRegistry.snapshot` + :meth:`ModelRegistry.write_vectors` re-project every item
   that existed before, writing a vector only if the item's ``content_hash`` is still the one
   read (a Lua script), so a fresher vector from the encoder is never overwritten;
3. :meth:`ModelRegistry.finish_publish` flips ``current`` and drops the version from
   ``preparing`` in one transaction.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import redis

from learnrec.shared.config import Settings
from learnrec.shared.redis_keys import RedisKeys
from learnrec.versions import files, record
from learnrec.versions import publish as publishing
from learnrec.versions.towers import OPTIONAL_META_FIELDS, LoadedVersion, VersionInfo

log = logging.getLogger(__name__)

META_FIELDS = ("version", "encoder", "content_dim", "output_dim", "max_history", "created_at", "source")

# KEYS[1] = vectors hash of the version, KEYS[2] = the items set, KEYS[3..] = item hashes; ARGV =
# (item_id, content_hash, vector bytes) per item. Writes a vector only where the item still has
# that content hash and is still in the catalogue (not removed or made unavailable meanwhile).
_WRITE_IF_UNCHANGED = """
local written = 0
for i = 3, #KEYS do
  local base = (i - 3) * 3
  if redis.call('HGET', KEYS[i], 'content_hash') == ARGV[base + 2]
      and redis.call('SISMEMBER', KEYS[2], ARGV[base + 1]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[base + 1], ARGV[base + 3])
    written = written + 1
  end
end
return written
"""


class VersionError(RuntimeError):
    """A version that cannot be published, loaded or rolled back to."""


@dataclass(frozen=True)
class ItemSnapshot:
    """Items read for re-projection: ids ``[n]``, content ``[n, content_dim]`` float32, hashes ``[n]``."""

    item_ids: list[str]
    content: np.ndarray
    content_hashes: list[str]


class ModelRegistry:
    """Reads and changes the model-version state of one Redis prefix."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, model_dir: Path, onnx_threads: int = 1,
                 lease_s: float = 120.0) -> None:
        self.redis = client
        self.keys = keys
        self.model_dir = Path(model_dir)
        self.onnx_threads = onnx_threads
        self.lease_ms = max(1, int(lease_s * 1000))
        self._write_if_unchanged = client.register_script(_WRITE_IF_UNCHANGED)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> ModelRegistry:
        return cls(client, RedisKeys.from_settings(settings), settings.versions.model_dir, settings.versions.onnx_threads,
                   settings.versions.model_publish_lease_s)

    # -- reading -------------------------------------------------------------------------------

    def current(self) -> str | None:
        value = self.redis.get(self.keys.model_current())
        return value.decode() if value else None

    def preparing(self) -> set[str]:
        return {v.decode() for v in self.redis.smembers(self.keys.model_preparing())}

    def versions(self) -> list[str]:
        """Published versions, the most recently published last."""
        return [v.decode() for v in self.redis.zrange(self.keys.model_versions(), 0, -1)]

    def info(self, version: str) -> VersionInfo:
        return VersionInfo.from_hash(self._meta(version))

    def _meta(self, version: str) -> dict[bytes, bytes]:
        fields = self.redis.hgetall(self.keys.model_meta(version))
        if not fields:
            raise VersionError(f"model version {version!r} is not registered")
        return fields

    def load_version(self, version: str) -> LoadedVersion:
        """The version's ONNX sessions, from files checked against the version's manifest: the
        folder it was registered from when that is in this host's ``model_dir`` and intact (the
        publisher's own), else this host's cached copy ``{model_dir}/{version}/``, fetched from
        Redis where it lacks or differs. A folder outside ``model_dir`` is never read, even when
        it can be: on one machine it is another host's."""
        fields = self._meta(version)
        info, manifest = VersionInfo.from_hash(fields), json.loads(fields.get(b"files", b"{}"))
        if "item_tower.onnx" not in manifest:
            raise VersionError(f"model version {version!r}: no item_tower.onnx among its files")
        folder = info.path
        if folder.resolve().parent != self.model_dir.resolve() or not files.matches(folder, manifest):
            try:
                folder = files.materialise(self.redis, self.keys.model_files(version), manifest, self.local_folder(version))
            except files.IntegrityError as exc:
                raise VersionError(f"model version {version!r}: {exc}") from exc
        return LoadedVersion(replace(info, path=folder), self.onnx_threads)

    def local_folder(self, version: str) -> Path:
        """This host's cached copy of a version's files."""
        return self.model_dir / version

    def watch_active(self, pipe: redis.client.Pipeline) -> list[str]:
        """For a writer of item vectors (the item encoder's side of the protocol): WATCH the keys
        a flip changes, then return the active versions, the current one first, then those being
        published. The writer's MULTI fails if a flip or a new publish happens meanwhile."""
        pipe.watch(self.keys.model_current(), self.keys.model_preparing())
        current = pipe.get(self.keys.model_current())
        if current is None:
            raise VersionError("no current model version: publish one (learnrec model bootstrap)")
        preparing = sorted(v.decode() for v in pipe.smembers(self.keys.model_preparing()))
        return [current.decode()] + [v for v in preparing if v != current.decode()]

    def watch_all(self, pipe: redis.client.Pipeline) -> set[str]:
        """Like :meth:`watch_active`, but every version that holds vectors: published (rollback
        targets too), being published, and the current one (possibly none)."""
        pipe.watch(self.keys.model_current(), self.keys.model_preparing())
        versions = {v.decode() for v in pipe.zrange(self.keys.model_versions(), 0, -1)}
        versions |= {v.decode() for v in pipe.smembers(self.keys.model_preparing())}
        current = pipe.get(self.keys.model_current())
        return versions | ({current.decode()} if current else set())

    # -- publishing ----------------------------------------------------------------------------

    def register(self, folder: Path) -> VersionInfo:
        """Upload a version folder's files to Redis, then record its ``meta.json``, its path and
        its file manifest (SHA-256 per file, and their digest); does not publish."""
        folder = Path(folder).resolve()
        meta = json.loads((folder / "meta.json").read_text())
        missing = [f for f in META_FIELDS if f not in meta]
        if missing:
            raise VersionError(f"{folder}/meta.json lacks {missing}")
        manifest = files.upload(self.redis, self.keys.model_files(meta["version"]), folder)
        fields = {f: str(meta[f]) for f in META_FIELDS} | {"path": str(folder)}
        fields |= {f: str(meta[f]) for f in OPTIONAL_META_FIELDS if f in meta}
        fields |= {"files": json.dumps(manifest), "digest": files.digest_of(manifest)}
        self.redis.hset(self.keys.model_meta(meta["version"]), mapping=fields)
        return self.info(meta["version"])

    def begin_publish(self, version: str) -> None:
        """Step 1: from now on the item encoder also writes vectors for ``version``. The
        publisher holds a lease on it (:meth:`renew_lease` while it works); a version whose
        lease ran out was abandoned (its publisher died) and is aborted here first."""
        self.load_version(version)  # fail here, not in every encoder, if the towers are unusable
        self.abort_abandoned()
        self.renew_lease(version)
        self.redis.sadd(self.keys.model_preparing(), version)
        log.info("publishing model version %s: preparing", version)

    def renew_lease(self, version: str) -> None:
        """The publisher of ``version`` is alive: its lease runs ``lease_s`` from now."""
        self.redis.set(self.keys.model_lease(version), "1", px=self.lease_ms)

    def abort_abandoned(self) -> list[str]:
        """Abort every preparing version whose publisher's lease ran out. Returns them."""
        abandoned = [v for v in sorted(self.preparing()) if not self.redis.exists(self.keys.model_lease(v))]
        for version in abandoned:
            log.warning("model version %s: its publisher's lease ran out; aborting it", version)
            self.abort_publish(version)
        return abandoned

    def snapshot(self, batch_size: int = 512) -> Iterator[ItemSnapshot]:
        """Step 2a: every item with a content embedding, in batches (read after begin_publish)."""
        ids: list[str] = []
        for raw in self.redis.sscan_iter(self.keys.items(), count=batch_size):
            ids.append(raw.decode())
            if len(ids) == batch_size:
                yield self._read_items(ids)
                ids = []
        if ids:
            yield self._read_items(ids)

    def _read_items(self, ids: list[str]) -> ItemSnapshot:
        pipe = self.redis.pipeline(transaction=False)
        for item_id in ids:
            pipe.hmget(self.keys.item(item_id), ["content", "content_hash"])
        found = [(i, c, h) for i, (c, h) in zip(ids, pipe.execute(), strict=True) if c and h]
        content = np.stack([np.frombuffer(c, np.float32) for _, c, _ in found]) if found else np.zeros((0, 0), np.float32)
        return ItemSnapshot([i for i, _, _ in found], content, [h.decode() for _, _, h in found])

    def write_vectors(
        self, version: str, item_ids: list[str], vectors: np.ndarray, content_hashes: list[str]
    ) -> int:
        """Step 2b: store ``vectors`` float32 ``[n, output_dim]`` for items whose content hash is
        still the one given and that are still in the catalogue. Returns how many were written
        (the others changed meanwhile and already have a fresher vector from the encoder, or
        were removed)."""
        if not item_ids:
            return 0
        vectors = np.ascontiguousarray(vectors, np.float32)
        keys = [self.keys.vectors(version), self.keys.items()] + [self.keys.item(i) for i in item_ids]
        args: list[bytes | str] = []
        for item_id, content_hash, vector in zip(item_ids, content_hashes, vectors, strict=True):
            args += [item_id, content_hash, vector.tobytes()]
        return int(self._write_if_unchanged(keys=keys, args=args))

    def finish_publish(self, version: str) -> None:
        """Step 3: make ``version`` current and stop preparing it, atomically."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.watch(self.keys.model_preparing())
            if not pipe.sismember(self.keys.model_preparing(), version):
                raise VersionError(f"model version {version!r} is not being published (aborted?)")
            pipe.multi()
            pipe.set(self.keys.model_current(), version)
            pipe.srem(self.keys.model_preparing(), version)
            pipe.zadd(self.keys.model_versions(), {version: time.time()})
            pipe.delete(self.keys.model_lease(version))
            pipe.execute()
        record.write(self)
        log.info("model version %s is current", version)

    def abort_publish(self, version: str) -> None:
        """Stop preparing ``version`` (a failed or abandoned publish). A version never published
        is discarded (partial vectors, metadata, folder); an earlier published one (a failed
        rollback) keeps them. Its publisher, if alive, then fails at :meth:`finish_publish`."""
        self.redis.srem(self.keys.model_preparing(), version)  # encoders stop writing for it first
        self.redis.delete(self.keys.model_lease(version))
        if version != self.current() and version not in self.versions() and self.redis.exists(self.keys.model_meta(version)):
            self.discard(version)
        log.info("model version %s: publish aborted", version)

    def publish(
        self, version: str, batch_size: int = 512, after_snapshot_batch: Callable[[], None] | None = None
    ) -> int:
        """Steps 1-3 for a registered version (:func:`learnrec.versions.publish.publish`); returns
        the number of vectors re-projected. ``after_snapshot_batch`` runs between reading a batch
        and writing its vectors (a test hook to interleave item writes deterministically)."""
        hook = (lambda batch: after_snapshot_batch()) if after_snapshot_batch else None
        return publishing.publish(self, version, batch_size=batch_size, on_batch=hook).written

    def rollback(self, version: str | None = None) -> str:
        """Serve an earlier published version again (default: the one before the current).

        Items that arrived after it stopped serving have no vector under it, so rolling back is
        a publish: every item is re-projected before the flip.
        """
        published = self.versions()
        if version is None:
            earlier = [v for v in published if v != self.current()]
            if not earlier:
                raise VersionError("no earlier published version to roll back to")
            version = earlier[-1]
        elif version not in published:
            raise VersionError(f"model version {version!r} was never published")
        self.publish(version)
        return version

    def discard(self, version: str) -> None:
        """Forget a registered version that was never published (a candidate the publish gate
        held): its metadata, files, any vectors, and its folders under ``model_dir``."""
        if version == self.current() or version in self.versions() or version in self.preparing():
            raise VersionError(f"model version {version!r} is published or being published")
        self._forget(version)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the ``keep`` most recently published versions (never the current or a
        preparing one): their vectors, metadata, files, and folders under ``model_dir``."""
        published = self.versions()
        protected = set(published[-keep:] if keep > 0 else []) | self.preparing()
        current = self.current()
        if current:
            protected.add(current)
        removed = [v for v in published if v not in protected]
        for version in removed:
            self._forget(version)
            self.redis.zrem(self.keys.model_versions(), version)
        if removed:
            record.write(self)
        return removed

    def _forget(self, version: str) -> None:
        """Delete a version's vectors, metadata and files, and its folders on this host that lie
        under ``model_dir`` (the one it was registered from, and the cached copy)."""
        path = self.info(version).path
        self.redis.delete(self.keys.vectors(version), self.keys.model_meta(version), self.keys.model_files(version))
        for folder in {path, self.local_folder(version)}:
            if folder.resolve().parent == self.model_dir.resolve() and folder.is_dir():
                shutil.rmtree(folder)

"""Index snapshots shared between serving processes: a version's index is built once.

The first serving process that loads a model version with an HNSW graph saves its index into
the version's folder (``{model_dir}/{version}/index/``, written to a temporary folder and
renamed, so a reader sees all of it or nothing), with the ``{p}:item-updates`` stream id taken
before it read the vectors. A later process (a restart, a new replica, a version flip back)
loads that snapshot instead of reading every vector and building the graph again, then
refreshes every item named in the stream after that id from the version's vectors in Redis:
new and changed items, removed ones, and the items a rollback re-projected (their vectors were
rewritten without an entry, but any item whose vector could differ has one: it arrived or
changed after the snapshot). When the stream no longer holds every entry since the snapshot
(trimmed past it, or gone with a wiped Redis), the snapshot is not used. Redis 7's ``XINFO
STREAM`` (``entries-added``) tells whether it was ever trimmed.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

import redis

from learnrec.serving.index import ItemIndex
from learnrec.shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)

FOLDER = "index"
READ_COUNT = 5000


def _stream_id(text: str) -> tuple[int, int]:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def stream_end(client: redis.Redis, keys: RedisKeys) -> str:
    """The id of the stream's newest entry ("0-0" when there is none)."""
    newest = client.xrevrange(keys.item_updates(), count=1)
    return newest[0][0].decode() if newest else "0-0"


def save(index: ItemIndex, version_folder: Path, stream_id: str) -> bool:
    """Write ``index`` as the version's snapshot, unless one exists (another process won);
    False when none was written."""
    final = version_folder / FOLDER
    if final.exists():
        return False
    staging = version_folder / f".{FOLDER}-{uuid.uuid4().hex[:8]}"
    try:
        index.save(staging)
        (staging / "stream_id").write_text(stream_id)
        staging.rename(final)
        return True
    except OSError as err:  # a read-only folder, a full disk, or another process renamed first
        log.warning("index snapshot not saved in %s: %s", version_folder, err)
        shutil.rmtree(staging, ignore_errors=True)
        return False


def restore(client: redis.Redis, keys: RedisKeys, version_folder: Path, dim: int,
            **options) -> tuple[ItemIndex, str] | None:
    """The version's saved index and the stream id it is current to, or None when there is no
    snapshot or the stream lost entries after it (then the caller builds the index)."""
    folder = version_folder / FOLDER
    if not (folder / "stream_id").exists():
        return None
    saved = (folder / "stream_id").read_text().strip()
    try:
        info = client.xinfo_stream(keys.item_updates())
    except redis.ResponseError:  # no stream
        if saved != "0-0":  # it had entries at the snapshot: lost with a wiped Redis
            return None
        info = {}  # never written: nothing to catch up on
    # Trimming drops the oldest entries: every entry after ``saved`` is still there when the
    # stream was never trimmed, or when its oldest entry is not newer than ``saved``.
    first = info.get("first-entry")
    trimmed = info.get("entries-added", 0) != info.get("length", 0)
    if trimmed and (not first or _stream_id(first[0].decode()) > _stream_id(saved)):
        log.info("index snapshot of %s is older than the trimmed stream; building", version_folder.name)
        return None
    try:
        return ItemIndex.load(folder, dim, **options), saved
    except (OSError, ValueError, RuntimeError) as err:
        log.warning("index snapshot in %s unreadable (%s); building", folder, err)
        return None


def named_since(client: redis.Redis, keys: RedisKeys, stream_id: str) -> list[str]:
    """Every item id named in the stream after ``stream_id``, once each, oldest first."""
    named: dict[str, None] = {}
    start = f"({stream_id}"
    while True:
        entries = client.xrange(keys.item_updates(), min=start, max="+", count=READ_COUNT)
        for _, fields in entries:
            if item_id := fields.get(b"item_id"):
                named[item_id.decode()] = None
        if len(entries) < READ_COUNT:
            return list(named)
        start = f"({entries[-1][0].decode()}"

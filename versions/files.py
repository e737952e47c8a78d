"""A version's files travel through Redis, so that no two hosts need a shared folder.

Registering a version uploads every file of its folder (ONNX towers, ``meta.json``, the ID table)
to the hash ``model:files:{v}``, in chunks, and returns the *manifest*: each file's size, SHA-256
and chunk count. The manifest goes into ``model:meta:{v}`` after the upload, so a host that sees
the version registered finds all of its files. A host that loads the version materialises it in
its own cache folder, ``{model_dir}/{v}/``: files whose SHA-256 already matches are kept, the
others are fetched and checked before they replace anything (docs/VERSIONS.md, "Files").
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import redis

CHUNK_BYTES = 16 * 1024 * 1024  # one Redis value; well below the server's 512 MB limit
SKIPPED = ("index",)  # what a serving host writes into its own copy: never part of the version


class IntegrityError(RuntimeError):
    """A version's files in Redis do not match its manifest (corrupt or incomplete)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upload(client: redis.Redis, key: str, folder: Path) -> dict[str, dict]:
    """Store every file of ``folder`` under the hash ``key`` (fields ``{name}#{chunk}``) and
    return the manifest ``{name: {"size", "sha256", "chunks"}}``."""
    manifest: dict[str, dict] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if name.split("/")[0] in SKIPPED:
            continue
        size, chunks = path.stat().st_size, 0
        with path.open("rb") as stream:
            while chunks == 0 or stream.tell() < size:
                client.hset(key, f"{name}#{chunks}", stream.read(CHUNK_BYTES))
                chunks += 1
        manifest[name] = {"size": size, "sha256": sha256_of(path), "chunks": chunks}
    return manifest


def digest_of(manifest: dict[str, dict]) -> str:
    """The version's content hash: SHA-256 over its manifest (names, sizes, file hashes)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def matches(folder: Path, manifest: dict[str, dict]) -> bool:
    """Whether ``folder`` holds every file of ``manifest`` with its size and SHA-256."""
    return all(_intact(folder / name, entry) for name, entry in manifest.items())


def _intact(path: Path, entry: dict) -> bool:
    return path.is_file() and path.stat().st_size == entry["size"] and sha256_of(path) == entry["sha256"]


def materialise(client: redis.Redis, key: str, manifest: dict[str, dict], folder: Path) -> Path:
    """Make ``folder`` hold the manifest's files, fetching from ``key`` those it lacks or holds
    with another hash; each fetched file is checked before it is moved into place. Raises
    :class:`IntegrityError` when Redis holds no such file or one that does not match."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, entry in manifest.items():
        path = folder / name
        if _intact(path, entry):
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            _fetch(client, key, name, entry, tmp)
        except IntegrityError:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, path)
    return folder


def _fetch(client: redis.Redis, key: str, name: str, entry: dict, out: Path) -> None:
    """Write file ``name`` to ``out`` chunk by chunk (one chunk in memory at a time), checking
    its size and SHA-256 against the manifest ``entry``."""
    digest, size = hashlib.sha256(), 0
    with out.open("wb") as stream:
        for k in range(entry["chunks"]):
            chunk = client.hget(key, f"{name}#{k}")
            if chunk is None:
                raise IntegrityError(f"{key}: file {name} is missing from Redis")
            digest.update(chunk)
            size += len(chunk)
            stream.write(chunk)
    if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
        raise IntegrityError(f"{key}: file {name} does not match its SHA-256 in the manifest")

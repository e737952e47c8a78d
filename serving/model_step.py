"""The model step of concurrent requests, batched, in short units between turns of the event loop.

A request that has its history's content embeddings hands them to :meth:`ModelStep.search` (or
:meth:`ModelStep.user_vector`, for a filtered request that searches on its own) and awaits the
result. The requests waiting there share one ONNX run of the user tower over ``[B, L,
content_dim]`` (right padded and masked, at most ``max_batch``); each request's index search then
runs on its own. Each turn of the event loop runs one unit of that work, a search if one is
ready, else a tower batch, so between two units the loop reads new requests, takes Redis replies
and sheds load (:mod:`learnrec.serving.shedding`): a new request waits behind at most one unit of
model work (a tower batch or one search, well under a millisecond each here) before the server
looks at it, and under load the batch grows instead of the queue of callbacks. The user tower and
the search stay on the event loop's thread (in worker threads they made p99 4-20x worse on two
cores: docs/SERVING.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from learnrec.serving.versions import ServingVersion

Scored = list[tuple[str, float]]


@dataclass
class _Job:
    version: ServingVersion
    history: Sequence[str]
    content: np.ndarray  # [L, content_dim]
    k: int | None  # None: the user vector only
    exclude: Collection[str]
    done: asyncio.Future


class ModelStep:
    """Batches the user tower of the requests waiting in a turn; runs one unit of model work a turn."""

    def __init__(self, max_batch: int, observe: Callable[[int], None] = lambda size: None) -> None:
        self.max_batch = max_batch
        self._observe = observe  # called with each batch's size
        self._waiting: deque[_Job] = deque()  # requests before the user tower
        self._searches: deque[tuple[_Job, np.ndarray]] = deque()  # requests with their user vector [vector_dim]
        self._scheduled = False

    async def search(self, version: ServingVersion, history: Sequence[str], content: np.ndarray,
                     k: int, exclude: Collection[str]) -> Scored:
        """The ``k`` best items for the user of ``history`` (content ``[L, content_dim]``),
        without ``exclude``."""
        return await self._submit(version, history, content, k, exclude)

    async def user_vector(self, version: ServingVersion, history: Sequence[str], content: np.ndarray) -> np.ndarray:
        """The user vector ``[vector_dim]`` of ``history`` (content ``[L, content_dim]``)."""
        return await self._submit(version, history, content, None, ())

    async def _submit(self, version: ServingVersion, history: Sequence[str], content: np.ndarray,
                      k: int | None, exclude: Collection[str]):
        loop = asyncio.get_running_loop()
        job = _Job(version, history, content, k, exclude, loop.create_future())
        self._waiting.append(job)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._step)
        return await job.done

    def _step(self) -> None:
        """One unit of model work: the search of a request whose user vector is ready, else the
        user tower over up to ``max_batch`` waiting requests; the rest waits for the next turn."""
        self._scheduled = False
        if self._searches:
            self._search_one()
        else:
            self._run_towers()
        if self._searches or self._waiting:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._step)

    def _run_towers(self) -> None:
        jobs = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
        jobs = [job for job in jobs if not job.done.cancelled()]  # their clients went away
        if jobs:
            self._observe(len(jobs))
        for version in {id(job.version): job.version for job in jobs}.values():
            self._run_version([job for job in jobs if job.version is version])

    def _run_version(self, jobs: list[_Job]) -> None:
        version = jobs[0].version
        try:
            vectors = version.user_vectors(*_padded([job.content for job in jobs]), [job.history for job in jobs])
        except Exception as err:  # every job of the batch gets the error (a 500 each)
            for job in jobs:
                job.done.set_exception(err)
            return
        for job, vector in zip(jobs, vectors, strict=True):
            if job.k is None:
                job.done.set_result(vector)
            else:
                self._searches.append((job, vector))

    def _search_one(self) -> None:
        job, vector = self._searches.popleft()
        if job.done.cancelled():
            return
        try:
            job.done.set_result(job.version.index.search(vector, job.k, job.exclude))
        except Exception as err:
            job.done.set_exception(err)


def _padded(contents: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Histories ``[L_i, D]`` -> (content float32 ``[B, max L_i, D]`` right padded with zeros,
    mask int64 ``[B, max L_i]``: 1 for a real item)."""
    longest = max(len(c) for c in contents)
    content = np.zeros((len(contents), longest, contents[0].shape[1]), np.float32)
    mask = np.zeros((len(contents), longest), np.int64)
    for row, history in enumerate(contents):
        content[row, : len(history)] = history
        mask[row, : len(history)] = 1
    return content, mask

"""Who is in the trainer group, and its current world, kept in Redis.

A *world* is one generation of the group: its members in rank order and the address of the
``TCPStore`` PyTorch's process group meets at (on the leader's host). Hosts share nothing but
Redis and Kafka, so membership lives there:

- every member refreshes a heartbeat (``{p}:trainer:members``, a zset of expiry times on Redis's
  clock) from a thread; one silent for ``group_member_ttl_s`` is gone;
- a member that needs a world (it just started, a collective failed, or the group re-forms)
  joins ``{p}:trainer:waiting``;
- once every live member waits, the one with the smallest id leads: it opens a ``TCPStore``
  and writes the next world (a compare-and-set on ``{p}:trainer:world``), and the others take
  their rank from it. A world whose member died before meeting fails to form (the process
  group's timeout) and the survivors ask for the next one.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass

import redis
import torch.distributed as dist

from learnrec.shared.redis_keys import RedisKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    generation: int
    members: tuple[str, ...]
    store: str  # host:port of the leader's TCPStore

    def rank(self, member: str) -> int:
        return self.members.index(member)

    def to_json(self) -> str:
        return json.dumps({"generation": self.generation, "members": list(self.members), "store": self.store})

    @classmethod
    def from_json(cls, raw: bytes | str | None) -> World | None:
        if raw is None:
            return None
        data = json.loads(raw)
        return cls(int(data["generation"]), tuple(data["members"]), data["store"])


class Membership:
    """This process's membership of the group (``start`` the heartbeat, ``stop`` to leave)."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, host: str, ttl_s: float, timeout_s: float) -> None:
        self.client = client
        self.keys = keys
        self.host = host
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.member_id = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"  # older members lead
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="trainer-heartbeat", daemon=True)

    def start(self) -> None:
        self._heartbeat()
        self._thread.start()

    def stop(self) -> None:
        """Leave the group: the others need not wait for the heartbeat to expire."""
        self._stopped.set()
        self._thread.join(timeout=self.ttl_s)
        try:
            self.client.zrem(self.keys.trainer_members(), self.member_id)
            self.client.srem(self.keys.trainer_waiting(), self.member_id)
        except redis.RedisError:
            log.warning("could not leave the trainer group cleanly (its heartbeat expires)", exc_info=True)

    def _now_ms(self) -> int:
        seconds, micros = self.client.time()
        return seconds * 1000 + micros // 1000

    def _heartbeat(self) -> None:
        self.client.zadd(self.keys.trainer_members(), {self.member_id: self._now_ms() + int(self.ttl_s * 1000)})

    def _beat(self) -> None:
        while not self._stopped.wait(self.ttl_s / 5):
            try:
                self._heartbeat()
            except redis.RedisError:
                log.warning("trainer heartbeat failed; trying again", exc_info=True)

    def live(self) -> list[str]:
        """The members whose heartbeat has not expired, oldest first."""
        now = self._now_ms()
        self.client.zremrangebyscore(self.keys.trainer_members(), "-inf", now)
        return sorted(m.decode() for m in self.client.zrangebyscore(self.keys.trainer_members(), now, "+inf"))

    def world(self) -> World | None:
        return World.from_json(self.client.get(self.keys.trainer_world()))

    def join(self, after_generation: int, stop: threading.Event) -> tuple[World, dist.Store] | None:
        """Wait for a world newer than ``after_generation`` that has this member (leading it
        when due); returns it and its store, or None once ``stop`` is set."""
        while not stop.is_set():
            # every turn: a Redis failover may have lost an earlier SADD (replication is async)
            self.client.sadd(self.keys.trainer_waiting(), self.member_id)
            world = self.world()
            if world is not None and world.generation > after_generation and self.member_id in world.members:
                host, port = world.store.rsplit(":", 1)
                try:
                    store = dist.TCPStore(host, int(port), len(world.members), False, timeout=self._timeout())
                except Exception:  # the leader is gone already: wait for the next world
                    log.warning("world %d: its store %s is unreachable", world.generation, world.store)
                    after_generation = world.generation
                    continue
                self.client.srem(self.keys.trainer_waiting(), self.member_id)
                return world, store
            led = self._lead(world, after_generation)
            if led is not None:
                return led
            stop.wait(0.1)
        return None

    def _lead(self, current: World | None, after_generation: int) -> tuple[World, dist.Store] | None:
        """Write the next world if every live member waits and this one is the oldest."""
        live = self.live()
        waiting = {m.decode() for m in self.client.smembers(self.keys.trainer_waiting())}
        gone = waiting - set(live)
        if gone:
            self.client.srem(self.keys.trainer_waiting(), *gone)
        if not live or live[0] != self.member_id or not set(live) <= waiting:
            return None
        store = dist.TCPStore(self.host, 0, len(live), True, timeout=self._timeout(), wait_for_workers=False)
        generation = max(current.generation if current else -1, after_generation) + 1
        world = World(generation, tuple(live), f"{self.host}:{store.port}")
        with self.client.pipeline(transaction=True) as pipe:
            pipe.watch(self.keys.trainer_world())
            if World.from_json(pipe.get(self.keys.trainer_world())) != current:
                return None  # someone else wrote a world meanwhile: read it on the next turn
            pipe.multi()
            pipe.set(self.keys.trainer_world(), world.to_json())
            pipe.srem(self.keys.trainer_waiting(), self.member_id)
            try:
                pipe.execute()
            except redis.WatchError:
                return None
        log.info("trainer group: world %d of %d members, led from %s", generation, len(live), world.store)
        return world, store

    def _timeout(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.timeout_s)

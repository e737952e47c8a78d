"""``learnrec train online`` with ``LEARNREC_TRAINER_GROUP=true``: one member of a trainer group.

Each member runs this on its own host (nothing shared but Kafka and Redis). Per world
(:mod:`learnrec.trainer.membership`): the members meet in a gloo process group, each restores
the group checkpoint (:mod:`learnrec.trainer.group_checkpoint`) for the partitions it owns now
(partition ``p`` goes to rank ``p mod size``), seeks them to the checkpoint's offsets, and
then the group trains in rounds (:mod:`learnrec.trainer.group_step`): poll, fence and add the
records (:class:`~learnrec.trainer.worker.TrainerLoop`), plan, step together, checkpoint and
publish (rank 0) when due.

When a member dies, the next collective fails on the others: they drop their state, meet in the
next world without it, and resume from the last checkpoint, the dead member's partitions
included. A member that joins, or leaves on SIGTERM, makes the group checkpoint and re-form.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass

import redis
import torch
import torch.distributed as dist
from kafka.partitioner.default import murmur2

from learnrec.shared.config import Settings
from learnrec.shared.dead_letter import DeadLetterWriter
from learnrec.shared.kafka_io import ensure_topics, make_consumer, make_producer
from learnrec.shared.redis_client import make_redis
from learnrec.shared.redis_keys import RedisKeys
from learnrec.shared.schemas import decode_interaction_event
from learnrec.shared.topics import DEAD_LETTER, GROUP_TRAINER, INTERACTIONS, group_name, topic_name
from learnrec.shared.worker import BatchWorker, serve_metrics, values
from learnrec.trainer import checkpointing, group_checkpoint
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content import ContentTable
from learnrec.trainer.group_step import Report, plan_round, same_model, train_released
from learnrec.trainer.membership import Membership, World
from learnrec.trainer.online import OnlineTrainer
from learnrec.trainer.worker import (
    WORKER,
    TrainerLoop,
    assign_partitions,
    build_trainer,
    serving_encoder,
    topic_partitions,
)
from learnrec.versions.registry import ModelRegistry

log = logging.getLogger(__name__)


def partition_of_user(topic: str, partitions: int):
    """``user_id -> "topic:partition"`` as Kafka's default partitioner places the user's events."""
    return lambda user_id: checkpointing.offset_key(topic, (murmur2(user_id.encode()) & 0x7FFFFFFF) % partitions)


@dataclass
class GroupMember:
    """This process's part in the group: its consumer, membership and the current world's loop."""

    settings: Settings
    max_idle_s: float | None = None
    loop: TrainerLoop | None = None

    def __post_init__(self) -> None:
        s = self.settings
        ensure_topics(s)
        self.client = make_redis(s)
        self.keys = RedisKeys.from_settings(s)
        self.registry = ModelRegistry.from_settings(s, self.client)
        self.topic = topic_name(s, INTERACTIONS)
        consumer = make_consumer(s, group_name(s, GROUP_TRAINER), [self.topic])
        self.worker = BatchWorker(WORKER, consumer, values(decode_interaction_event), self._handle,
                                  DeadLetterWriter(make_producer(s), topic_name(s, DEAD_LETTER), WORKER))
        self.membership = Membership(self.client, self.keys, s.trainer.group_host, s.trainer.group_member_ttl_s,
                                     s.trainer.group_timeout_s)

    def _handle(self, batch):
        assert self.loop is not None, "records arrive only inside a world"
        return self.loop.handle(batch)

    def run(self) -> None:
        """Join worlds and train until told to stop (or the whole group was idle)."""
        self.membership.start()
        generation = -1
        try:
            while True:
                try:
                    joined = self.membership.join(generation, self.worker.stop_event)
                except redis.RedisError:  # a Redis failover, say: ask again
                    log.warning("joining the trainer group failed; trying again", exc_info=True)
                    self.worker.stop_event.wait(1.0)
                    continue
                if joined is None:
                    return
                world, store = joined
                generation = world.generation
                if self._run_world(world, store) == "stop":
                    return
        finally:
            self.membership.stop()
            self.worker.consumer.close(autocommit=False)

    def _run_world(self, world: World, store: dist.Store) -> str:
        """Train in ``world`` until it stops ("stop") or must re-form ("reform", "failed")."""
        rank, size = world.rank(self.membership.member_id), len(world.members)
        timeout = datetime.timedelta(seconds=self.settings.trainer.group_timeout_s)
        try:
            dist.init_process_group("gloo", store=dist.PrefixStore(f"world-{world.generation}", store),
                                    rank=rank, world_size=size, timeout=timeout)
        except Exception:
            log.exception("world %d did not form; asking for the next", world.generation)
            return "failed"
        try:
            self.loop = TrainerLoop(self.settings, self._restore(rank, size), self.registry)
            log.info("world %d: rank %d of %d", world.generation, rank, size)
            return self._rounds(world, rank)
        except Exception:
            log.exception("world %d failed; re-forming from the last group checkpoint", world.generation)
            return "failed"
        finally:
            dist.destroy_process_group()

    def _restore(self, rank: int, size: int) -> OnlineTrainer:
        s = self.settings
        every = topic_partitions(self.worker.consumer, self.topic)
        partitions = [p for p in every if p % size == rank]
        owned = {checkpointing.offset_key(self.topic, p) for p in partitions}
        state = group_checkpoint.read(self.client, self.keys)
        if state is None and s.trainer.checkpoint.exists():
            state = group_checkpoint.from_file(s.trainer.checkpoint)
        if state is None:
            trainer = build_trainer(s, self.client, self.registry)  # trainer_init or scratch
        else:
            extra = group_checkpoint.member_state(state, owned, partition_of_user(self.topic, len(every)),
                                                  rank, size, s.trainer.seed)
            model = state.model()
            trainer = OnlineTrainer.restore(model, extra, ContentTable(model.config.content_dim, self.client, self.keys),
                                            TrainConfig.from_settings(s), serving_encoder(s, self.registry))
        trainer.auto_step = False
        same_model(trainer)
        assign_partitions(self.worker.consumer, self.topic, partitions, trainer.offsets)
        return trainer

    def _rounds(self, world: World, rank: int) -> str:
        loop = self.loop
        assert loop is not None
        s, trainer = self.settings, loop.trainer
        last_polled = time.monotonic()
        last_membership = 0.0
        while True:
            before = (loop.since_checkpoint, loop.since_publish)
            if self.worker.run_once().polled:
                last_polled = time.monotonic()
            reform = False
            if rank == 0 and time.monotonic() - last_membership > 1.0:
                last_membership = time.monotonic()
                reform = set(self.membership.live()) != set(world.members)
            report = Report(
                released=trainer.released, added=loop.since_publish - before[1],
                idle=self.max_idle_s is not None and time.monotonic() - last_polled > self.max_idle_s,
                leaving=self.worker.stop_event.is_set(), reform=reform,
                checkpoint=rank == 0 and loop.checkpoint_due(), publish=rank == 0 and loop.publish_due())
            plan = plan_round(report, s.trainer.batch_size)
            train_released(trainer, plan.steps, s.trainer.batch_size)
            self._count(loop, before, plan.added)
            if plan.checkpoint:
                group_checkpoint.write(trainer, self.client, self.keys)
                loop.since_checkpoint = 0
            if plan.publish and rank == 0:
                loop.publish()
            if plan.stop or rank in plan.leaving:
                return "stop"
            if plan.reform:
                return "reform"

    @staticmethod
    def _count(loop: TrainerLoop, before: tuple[int, int], added: int) -> None:
        """The cadence counters count the whole group's events (rank 0 decides on them), not
        only the ones this member handled."""
        loop.since_checkpoint = before[0] + added
        loop.since_publish = before[1] + added
        if added and loop.unpublished_since is None:
            loop.unpublished_since = time.monotonic()


def run_group(settings: Settings, max_idle_s: float | None = None, metrics_port: int | None = None) -> GroupMember:
    """Train as a member of the group until SIGTERM/SIGINT (or the whole group idle for
    ``max_idle_s``); returns the member (its last world's loop in ``.loop``)."""
    torch.set_num_threads(settings.trainer.threads)
    serve_metrics(settings.process.metrics_port if metrics_port is None else metrics_port, WORKER)
    member = GroupMember(settings, max_idle_s)
    member.worker.install_signal_handlers()
    member.run()
    return member

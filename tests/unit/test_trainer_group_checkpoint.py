"""A trainer group's checkpoint split among the members of a new world (no Redis: the parts as
read), and a single trainer's file checkpoint read as a group checkpoint of one."""

from __future__ import annotations

from learnrec.trainer import group_checkpoint
from learnrec.trainer.group_worker import partition_of_user
from learnrec.trainer.online import OnlineTrainer
from tests.group_helpers import member_events, small_trainer

TOPIC = "t.interactions"


def _single_trainer_checkpoint(tmp_path) -> tuple[OnlineTrainer, group_checkpoint.GroupState]:
    """One trainer that consumed 120 events from 4 partitions (20 held back), saved to a file."""
    trainer = small_trainer(gate_events=20, replay_fraction=1.0)
    where = partition_of_user(TOPIC, 4)
    events = member_events(0, 60) + member_events(1, 60)
    for n, event in enumerate(events):
        key = where(event.user_id)
        trainer.add([event], {key: n + 1}, [key])
    trainer.save(tmp_path / "online.ckpt")
    return trainer, group_checkpoint.from_file(tmp_path / "online.ckpt")


def test_a_single_trainer_s_checkpoint_splits_among_two_members_by_partition(tmp_path):
    trainer, state = _single_trainer_checkpoint(tmp_path)
    where = partition_of_user(TOPIC, 4)
    owned = [{f"{TOPIC}:0", f"{TOPIC}:2"}, {f"{TOPIC}:1", f"{TOPIC}:3"}]
    members = [group_checkpoint.member_state(state, owned[rank], where, rank, 2, seed=7) for rank in (0, 1)]

    seqs = trainer.sequences.state()["seqs"]
    for rank, extra in enumerate(members):
        assert set(extra["sequences"]["seqs"]) == {u for u in seqs if where(u) in owned[rank]}
        assert all(extra["sequences"]["seqs"][u] == seqs[u] for u in extra["sequences"]["seqs"])
        assert set(extra["offsets"]) == owned[rank] & set(trainer.offsets)
        assert {entry[3] for entry in extra["holdback"]} <= owned[rank]
        assert extra["steps"] == trainer.steps and extra["id_items"] == list(trainer.ids.items)
    assert sum(len(m["holdback"]) for m in members) == 20  # every held-back event goes to its partition's owner
    assert [m["trained"] for m in members] == [100, 0]  # counts sum over parts: rank 0 carries them
    assert members[0]["audit"] == trainer.audit and members[1]["audit"] == {}
    pooled = sorted(map(tuple, trainer.replay.state()["items"]))  # shared out, none twice
    assert sorted(map(tuple, members[0]["replay"]["items"] + members[1]["replay"]["items"])) == pooled


def test_the_members_restore_trainers_that_go_on_training(tmp_path):
    trainer, state = _single_trainer_checkpoint(tmp_path)
    extra = group_checkpoint.member_state(state, {f"{TOPIC}:{p}" for p in range(4)}, partition_of_user(TOPIC, 4),
                                          0, 1, seed=0)
    restored = OnlineTrainer.restore(state.model(), extra, trainer.content, trainer.cfg, "test")
    assert restored.offsets == trainer.offsets and restored.held_back() == trainer.held_back()
    assert all((a == b).all() for a, b in zip(restored.model.state_dict().values(),
                                               trainer.model.state_dict().values(), strict=True))
    restored.release_all()
    assert restored.trained == 120

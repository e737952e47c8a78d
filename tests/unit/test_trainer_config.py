"""TrainConfig: one config for offline and online training, with no field silently ignored."""

from dataclasses import fields

import pytest

from learnrec.shared.config import Settings, TrainerSettings
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.trainer.baselines import SASREC_TRAIN
from learnrec.trainer.config import OfflineSchedule, OnlineStream, TrainConfig, settings_fields
from learnrec.trainer.content import ContentTable
from learnrec.trainer.offline import default_configs
from learnrec.trainer.online import OnlineTrainer

ONLINE = TrainConfig.from_settings(Settings.model_construct(trainer=TrainerSettings.model_construct()))  # defaults, not the environment
OFFLINE_ONLY = sorted(f.name for f in fields(OfflineSchedule))
ONLINE_ONLY = sorted(f.name for f in fields(OnlineStream))


def test_the_offline_and_online_defaults_are_unchanged():
    _, learn = default_configs(16, seed=3)
    assert (learn.batch_size, learn.lr, learn.weight_decay, learn.warmup_steps, learn.seed) == (128, 3e-3, 0.01, 100, 3)
    assert (learn.temperature, learn.full_softmax_max_items, learn.negatives, learn.id_min_count) == (0.05, 8192, 2048, 10)
    assert learn.mask_history and learn.online is None
    assert learn.offline == OfflineSchedule(eval_every=200, patience=5, max_steps=200_000, max_minutes=15.0,
                                            valid_users=10_000)
    assert (SASREC_TRAIN.lr, SASREC_TRAIN.batch_size, SASREC_TRAIN.warmup_steps) == (1e-3, 128, 100)
    assert (ONLINE.batch_size, ONLINE.lr, ONLINE.weight_decay, ONLINE.warmup_steps, ONLINE.seed) == (256, 1e-3, 0.01, 20, 0)
    assert (ONLINE.temperature, ONLINE.negatives, ONLINE.id_min_count, ONLINE.mask_history) == (0.05, 1024, 10, True)
    assert not ONLINE.full_softmax(1) and ONLINE.offline is None
    assert ONLINE.online == OnlineStream(replay_fraction=1.0, replay_capacity=20_000, max_users=1_000_000,
                                         gate_events=500, audit=False)


@pytest.mark.parametrize("name", OFFLINE_ONLY)
def test_an_offline_only_field_set_for_online_training_raises(name):
    with pytest.raises(ValueError, match=f"{name}: offline training only"):
        ONLINE.override(**{name: 1})


@pytest.mark.parametrize("name", ONLINE_ONLY)
def test_an_online_only_field_set_for_offline_training_raises(name):
    with pytest.raises(ValueError, match=f"{name}: online training only"):
        TrainConfig().override(**{name: 1})


def test_a_config_is_for_one_mode_and_the_other_mode_refuses_it():
    with pytest.raises(ValueError, match="exactly one part"):
        TrainConfig(online=OnlineStream())
    with pytest.raises(ValueError, match="exactly one part"):
        TrainConfig(offline=None)
    with pytest.raises(ValueError, match="offline training needs"):
        ONLINE.require_offline()
    table = ContentTable(4)
    with pytest.raises(ValueError, match="online training needs"):
        OnlineTrainer(LearnModel(LearnConfig(4, model_dim=8, num_layers=1, output_dim=8)), table, TrainConfig(), "t")
    with pytest.raises(ValueError, match="unknown training settings: sampled_negatives"):
        TrainConfig().override(sampled_negatives=16)


def test_override_sets_top_level_and_mode_fields():
    cfg = TrainConfig().override(lr=0.5, max_minutes=2.0, negatives=7)
    assert (cfg.lr, cfg.offline.max_minutes, cfg.negatives) == (0.5, 2.0, 7)
    assert ONLINE.override(gate_events=0, batch_size=4).online.gate_events == 0


def test_the_record_holds_only_what_training_used():
    record = TrainConfig().record(unused=["negatives"])
    assert "negatives" not in record and "online" not in record and record["offline"]["max_minutes"] == 15.0
    assert "offline" not in ONLINE.record() and ONLINE.record()["online"]["gate_events"] == 500


def test_every_field_with_a_trainer_setting_is_read_from_its_environment_variable(monkeypatch):
    names = {f.name for f in fields(TrainConfig)} - {"offline", "online"} | set(ONLINE_ONLY)
    mapping = settings_fields()
    assert set(mapping) == {n for n in names if n in TrainerSettings.model_fields}
    # a new field without a setting must be added here on purpose (online uses its fixed value)
    assert names - set(mapping) == {"full_softmax_max_items", "mask_history"}
    wanted = {}
    for name in mapping:
        default = TrainerSettings.model_fields[name].default
        wanted[name] = not default if isinstance(default, bool) else default * 2 if isinstance(default, float) else default + 1
        monkeypatch.setenv(f"LEARNREC_TRAINER_{name.upper()}", str(wanted[name]))
    cfg = TrainConfig.from_settings(Settings())
    got = {name: getattr(cfg.online if name in ONLINE_ONLY else cfg, name) for name in mapping}
    assert got == wanted


def test_zero_negatives_are_refused_when_the_settings_are_read():
    with pytest.raises(ValueError, match="negatives"):
        Settings(trainer_negatives=0)

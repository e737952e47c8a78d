"""One training configuration for offline and online training: :class:`TrainConfig`.

Its top-level fields are what every mode honours (optimisation and the LEARN objective); what
only one mode has is that mode's part, ``offline`` (:class:`OfflineSchedule`) or ``online``
(:class:`OnlineStream`), and a config carries exactly one of them, so no field of the other mode
can be set (:meth:`TrainConfig.override` raises). The dataclass defaults are offline LEARN's
(docs/MODEL.md); the online trainer's come from the ``trainer_<field>`` settings
(:meth:`TrainConfig.from_settings`: ``settings.trainer``, environment ``LEARNREC_TRAINER_<FIELD>``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from learnrec.shared.config import Settings, TrainerSettings


@dataclass(frozen=True)
class OfflineSchedule:
    """Offline only (:func:`learnrec.trainer.fit.fit`): validate every ``eval_every`` steps on at
    most ``valid_users`` users (a seeded sample); after ``patience`` evaluations without
    improvement, go back to the best weights with the learning rate times ``lr_decay``, at most
    ``plateau_decays`` times, then stop; stop too after ``max_steps`` or ``max_minutes`` of wall
    time. With ``ema_decay`` > 0, what is validated and kept is an exponential moving average of
    the weights (its decay warms up to ``ema_decay``: :mod:`learnrec.trainer.fit`). With
    ``refit_path`` (a validated run's report ``path``: ``[steps, rate factor]`` segments), a
    refit: no validation, training follows that path within ``max_minutes``. After training,
    the weight of the content blend (:mod:`learnrec.trainer.content_blend`) is the one of
    ``content_blends`` with the best validation NDCG@10 (one weight: that one, unvalidated)."""

    eval_every: int = 200
    patience: int = 5
    plateau_decays: int = 0
    lr_decay: float = 0.3
    ema_decay: float = 0.0
    max_steps: int = 200_000
    max_minutes: float = 15.0
    valid_users: int = 10_000
    refit_path: tuple[tuple[int, float], ...] = ()
    content_blends: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8)


@dataclass(frozen=True)
class OnlineStream:
    """Online only (:class:`learnrec.trainer.online.OnlineTrainer`): a replay sample of
    ``replay_fraction`` times a step's new examples, drawn from a reservoir of
    ``replay_capacity`` sequences; the sequences of at most ``max_users`` users; the latest
    ``gate_events`` events held back for the publish gate; ``audit`` keeps {event id: times
    trained} in the checkpoint."""

    replay_fraction: float = 1.0
    replay_capacity: int = 20_000
    max_users: int = 1_000_000
    gate_events: int = 500
    audit: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Optimisation: AdamW steps of ``batch_size`` examples, learning rate ``lr`` after a linear
    warm-up over ``warmup_steps``, ``weight_decay``; ``seed`` seeds initialisation and sampling.
    Objective (LEARN): cosine logits over ``temperature``; a target is scored against every item
    of a catalogue of at most ``full_softmax_max_items`` items, else against ``negatives`` items
    drawn uniformly (logQ correction); with ``mask_history`` the user's own items are never its
    negatives; an item gets an ID row after ``id_min_count`` training interactions.
    """

    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    seed: int = 0
    temperature: float = 0.05
    full_softmax_max_items: int = 8192
    negatives: int = 2048
    mask_history: bool = True
    id_min_count: int = 10
    offline: OfflineSchedule | None = field(default_factory=OfflineSchedule)
    online: OnlineStream | None = None

    def __post_init__(self) -> None:
        if (self.offline is None) == (self.online is None):
            raise ValueError("a training config has exactly one part: offline or online")

    @property
    def mode(self) -> str:
        return "offline" if self.offline is not None else "online"

    def require_offline(self) -> OfflineSchedule:
        """The offline part (raises for an online config)."""
        return self._part("offline")

    def require_online(self) -> OnlineStream:
        """The online part (raises for an offline config)."""
        return self._part("online")

    def _part(self, mode: str) -> Any:
        part = getattr(self, mode)
        if part is None:
            raise ValueError(f"{mode} training needs an {mode} config; this one is for {self.mode} training")
        return part

    def full_softmax(self, n_items: int) -> bool:
        """Whether every one of a catalogue's ``n_items`` items is a negative (else ``negatives``
        sampled ones)."""
        return n_items <= self.full_softmax_max_items

    def override(self, **values: Any) -> TrainConfig:
        """A copy with ``values`` set by field name: a top-level field or one of this config's
        mode part (``max_minutes``, ``gate_events``). A field of the other mode's part, or an
        unknown name, raises."""
        top = {k: values.pop(k) for k in list(values) if k in SHARED_FIELDS}
        for mode, part_class in (("offline", OfflineSchedule), ("online", OnlineStream)):
            mine = {k: values.pop(k) for k in list(values) if k in _names(part_class)}
            if mine and getattr(self, mode) is None:
                raise ValueError(f"{', '.join(mine)}: {mode} training only; this config is for {self.mode} training")
            if mine:
                top[mode] = replace(getattr(self, mode), **mine)
        if values:
            raise ValueError(f"unknown training settings: {', '.join(values)}")
        return replace(self, **top)

    def require_defaults(self, names: Iterable[str], reason: str) -> None:
        """Raise when any of the top-level fields ``names`` is not its default: ``reason``
        says why the model being trained does not use them."""
        changed = [n for n in names if getattr(self, n) != TrainConfig.__dataclass_fields__[n].default]
        if changed:
            raise ValueError(f"{', '.join(changed)} set, but {reason}")

    def record(self, unused: Iterable[str] = ()) -> dict:
        """JSON-ready: the fields that training used (``unused``: top-level ones it did not),
        with its mode's part."""
        skip = set(unused)
        return {k: v for k, v in asdict(self).items() if v is not None and k not in skip}

    @classmethod
    def from_settings(cls, s: Settings) -> TrainConfig:
        """The online config: each field that the trainer's settings also have read from them
        (:func:`settings_fields`), ``mask_history`` on. No setting names the full-softmax
        threshold: online steps sample ``negatives`` items (all when the catalogue has no more)."""
        read = {name: getattr(s.trainer, name) for name in settings_fields()}
        stream = {k: read.pop(k) for k in _names(OnlineStream) if k in read}
        return cls(**read, full_softmax_max_items=0, offline=None, online=OnlineStream(**stream))


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


SHARED_FIELDS = _names(TrainConfig) - {"offline", "online"}


def settings_fields() -> list[str]:
    """The fields of :class:`TrainConfig` and :class:`OnlineStream` that
    :class:`~learnrec.shared.config.TrainerSettings` has too (``LEARNREC_TRAINER_<FIELD>``)."""
    return sorted(n for n in SHARED_FIELDS | _names(OnlineStream) if n in TrainerSettings.model_fields)

"""Interaction data sets and splits.

Every loader returns a :class:`SeqDataset`: items indexed ``0..n_items-1`` (external ids and
encoder texts) and one chronological item-index sequence per user. Splits turn it into a
:class:`Split`:

- ``loo`` (leave-one-out, as the files give it): per user, the last item is the test target,
  the second-to-last the valid target, the rest trains;
- ``cold``: two disjoint seeded random sets of items are published only after training: the
  *test-cold* 10% and the *valid-cold* 5%. Both leave training entirely (training sequences,
  and training never uses them as negatives). Validation happens before the test-cold items
  exist: no valid target is test-cold and they leave valid histories, while valid users whose
  target is valid-cold measure cold start on validation (to choose settings there). The test
  set is unchanged: test users whose target is either set measure cold start.
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from learnrec.shared.model.item_text import item_text
from learnrec.shared.schemas import EventError, decode_interaction_event, decode_item_event

DATA_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
DATASETS = ("amazon-scientific", "ml-100k")


@dataclass
class SeqDataset:
    """Items ``0..n_items-1`` and per-user chronological sequences of item indices."""

    name: str
    item_ids: list[str]
    item_texts: list[str]
    user_ids: list[str]
    sequences: list[np.ndarray]  # per user: int64 [len], oldest first

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


@dataclass
class EvalSet:
    """Next-item queries: ``histories[u]`` int64 [len] (oldest first) -> ``targets[u]``."""

    histories: list[np.ndarray]
    targets: np.ndarray  # int64 [n_users]


@dataclass
class Split:
    name: str
    n_items: int
    train: list[np.ndarray]  # per user: int64 [len] training sequence
    valid: EvalSet
    test: EvalSet
    cold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    valid_cold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # per user: the training sequence with its validation target appended (a refit's data)
    train_with_valid: list[np.ndarray] = field(default_factory=list)

    def for_refit(self) -> Split:
        """This split with ``train_with_valid`` as its training sequences: what a model is
        refitted on for the test once validation has chosen its settings and its length."""
        if not self.train_with_valid:
            raise ValueError(f"the {self.name} split has no training sequences with validation targets")
        return replace(self, train=self.train_with_valid, train_with_valid=[])

    def train_counts(self) -> np.ndarray:
        """int64 [n_items]: how often each item occurs in the training sequences."""
        flat = np.concatenate(self.train) if self.train else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=self.n_items)

    def unknown_items(self) -> np.ndarray:
        """bool [n_items]: items that do not exist yet at training time (the cold split's two
        cold sets): never a target and never a negative in training, like an item published later."""
        unknown = np.zeros(self.n_items, dtype=bool)
        unknown[self.cold_items] = True
        unknown[self.valid_cold_items] = True
        return unknown


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))


def load_unisrec(folder: str | os.PathLike, name: str | None = None) -> SeqDataset:
    """UniSRec format: ``{X}.text``, ``{X}.item2index``, ``{X}.user2index`` and
    ``{X}.test.inter`` (a user's whole sequence is the test row's history plus its target)."""
    folder = Path(folder)
    stem = next(folder.glob("*.test.inter")).name[: -len(".test.inter")]
    index = {row[0]: int(row[1]) for row in _rows(folder / f"{stem}.item2index")}
    item_ids = [""] * len(index)
    for asin, i in index.items():
        item_ids[i] = asin
    texts = [""] * len(index)
    for asin, raw in _rows(folder / f"{stem}.text")[1:]:
        if asin in index:
            # "title. categories. brand." -- split from the right: titles may contain ". "
            parts = raw.strip().rstrip(".").rsplit(". ", 2)
            title, category, brand = (parts + ["", ""])[:3] if len(parts) < 3 else parts
            texts[index[asin]] = item_text(title, brand or None, category or None)
    for i, text in enumerate(texts):
        texts[i] = text or item_text(item_ids[i])
    users = {row[0]: int(row[1]) for row in _rows(folder / f"{stem}.user2index")}
    user_ids = [""] * len(users)
    for uid, u in users.items():
        user_ids[u] = uid
    sequences: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(users)
    for user, history, target in _rows(folder / f"{stem}.test.inter")[1:]:
        seq = [int(x) for x in history.split()] + [int(target)]
        sequences[int(user)] = np.array(seq, dtype=np.int64)
    return SeqDataset(name or folder.name, item_ids, texts, user_ids, sequences)


def _build(name: str, items: dict[str, str], events: list[tuple[str, float, int, str]]) -> SeqDataset:
    """``items`` external id -> text; ``events`` (user, time, order, item) -> SeqDataset.
    Items that occur only in events get their id as text; ties in time keep file order."""
    for _, _, _, item in events:
        items.setdefault(item, item_text(item))
    item_ids = list(items)
    index = {item: i for i, item in enumerate(item_ids)}
    per_user: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
    for user, t, order, item in events:
        per_user[user].append((t, order, index[item]))
    user_ids = list(per_user)
    sequences = [np.array([i for _, _, i in sorted(per_user[u])], dtype=np.int64) for u in user_ids]
    return SeqDataset(name, item_ids, [items[i] for i in item_ids], user_ids, sequences)


def load_recbole(folder: str | os.PathLike, name: str | None = None) -> SeqDataset:
    """RecBole atomic files ``{X}.inter`` (user_id, item_id, [rating], timestamp) and
    ``{X}.item`` (item_id, then text fields such as movie_title, release_year, class)."""
    folder = Path(folder)
    stem = next(folder.glob("*.inter")).stem
    items: dict[str, str] = {}
    item_file = folder / f"{stem}.item"
    if item_file.exists():
        rows = _rows(item_file)
        cols = [h.split(":")[0] for h in rows[0]]
        for row in rows[1:]:
            rec = dict(zip(cols, row, strict=False))
            title = rec.get("movie_title") or rec.get("title") or rec["item_id"]
            year = rec.get("release_year")
            title = f"{title} ({year})" if year else title
            category = rec.get("class") or rec.get("genre") or rec.get("categories")
            items[rec["item_id"]] = item_text(title, rec.get("brand"), category)
    rows = _rows(folder / f"{stem}.inter")
    cols = [h.split(":")[0] for h in rows[0]]
    u, i, t = cols.index("user_id"), cols.index("item_id"), cols.index("timestamp")
    events = [(r[u], float(r[t]), n, r[i]) for n, r in enumerate(rows[1:])]
    return _build(name or folder.name, items, events)


def load_jsonl(path: str | os.PathLike, name: str | None = None) -> SeqDataset:
    """A JSON-lines event log: item events (``item_id``, ``title``, ...) and interaction events
    (``event_id``, ``user_id``, ``item_id``, ``timestamp``) in the wire schema, in any order.
    Invalid lines are skipped; a repeated ``event_id`` counts once; an item's last event wins."""
    path = Path(path)
    items: dict[str, str] = {}
    events: list[tuple[str, float, int, str]] = []
    seen: set[str] = set()
    with path.open("rb") as fh:
        for n, line in enumerate(fh):
            line = line.strip()
            if not line:
                continue
            try:
                is_interaction = "user_id" in json.loads(line)
                if is_interaction:
                    ev = decode_interaction_event(line)
                    if ev.event_id not in seen:
                        seen.add(ev.event_id)
                        events.append((ev.user_id, ev.timestamp, n, ev.item_id))
                else:
                    it = decode_item_event(line)
                    items[it.item_id] = item_text(
                        it.title, it.brand, it.category, it.description, it.attributes
                    )
            except (EventError, ValueError, TypeError):
                continue
    return _build(name or path.stem, items, events)


def load_dataset(path: str | os.PathLike) -> SeqDataset:
    """Any supported source: a ``.jsonl`` file, a UniSRec folder or a RecBole folder."""
    path = Path(path)
    if path.is_file():
        return load_jsonl(path)
    if any(path.glob("*.test.inter")):
        return load_unisrec(path)
    if any(path.glob("*.inter")):
        return load_recbole(path)
    raise FileNotFoundError(f"{path}: no UniSRec, RecBole or JSON-lines data found")


def data_path(name: str) -> Path:
    """The default location of a named data set: ``../shared/data/<name>`` from the repo."""
    return DATA_ROOT / name


def leave_one_out(ds: SeqDataset) -> Split:
    """Last item tests, second-to-last validates, the rest trains (users with < 3 items only
    train; a refit trains on all but the last)."""
    train, vh, vt, th, tt = [], [], [], [], []
    for seq in ds.sequences:
        if len(seq) < 3:
            train.append(seq)
            continue
        train.append(seq[:-2])
        vh.append(seq[:-2])
        vt.append(seq[-2])
        th.append(seq[:-1])
        tt.append(seq[-1])
    return Split(
        "loo", ds.n_items, train, EvalSet(vh, np.array(vt, dtype=np.int64)),
        EvalSet(th, np.array(tt, dtype=np.int64)),
        train_with_valid=[s if len(s) < 3 else s[:-1] for s in ds.sequences],
    )


def cold_start(ds: SeqDataset, fraction: float = 0.1, seed: int = 0, valid_fraction: float = 0.05) -> Split:
    """Leave-one-out, then seeded random ``fraction`` (test-cold) and ``valid_fraction``
    (valid-cold) of the items leave training entirely (see the module docstring)."""
    loo = leave_one_out(ds)
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(ds.n_items, size=round(fraction * ds.n_items), replace=False))
    is_cold = np.zeros(ds.n_items, dtype=bool)
    is_cold[cold] = True
    rest = np.flatnonzero(~is_cold)
    valid_cold = np.sort(rng.choice(rest, size=round(valid_fraction * ds.n_items), replace=False))
    unknown = is_cold.copy()
    unknown[valid_cold] = True
    train = [s[~unknown[s]] for s in loo.train]
    train_with_valid = [s[~unknown[s]] for s in loo.train_with_valid]
    keep = [u for u, t in enumerate(loo.valid.targets) if not is_cold[t]]
    valid = EvalSet(
        [loo.valid.histories[u][~is_cold[loo.valid.histories[u]]] for u in keep],
        loo.valid.targets[keep],
    )
    keep_valid = [u for u, h in enumerate(valid.histories) if len(h)]
    valid = EvalSet([valid.histories[u] for u in keep_valid], valid.targets[keep_valid])
    return Split("cold", ds.n_items, train, valid, loo.test, cold_items=cold, valid_cold_items=valid_cold,
                 train_with_valid=train_with_valid)


def make_split(ds: SeqDataset, name: str, seed: int = 0) -> Split:
    if name == "loo":
        return leave_one_out(ds)
    if name == "cold":
        return cold_start(ds, seed=seed)
    raise ValueError(f"unknown split {name!r} (loo or cold)")

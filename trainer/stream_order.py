"""A data set as one time-ordered interaction stream (for replays and the demo).

RecBole ``.inter`` and JSON-lines files carry timestamps; data without them (UniSRec's
amazon-scientific has order but no time) get, per user, sorted uniform random times (seeded),
so that users interleave over the whole stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from learnrec.shared.schemas import decode_interaction_event
from learnrec.trainer.data import SeqDataset


@dataclass(frozen=True)
class StreamEvent:
    user: str
    item: int  # index into the data set's items
    time: float


def event_times(path: Path, ds: SeqDataset, seed: int = 0) -> list[np.ndarray]:
    """Per user (in ``ds.user_ids`` order) the times of their sequence's events, float64 [len].

    RecBole ``.inter`` and JSON-lines files carry Unix timestamps; data without them (UniSRec)
    get sorted uniform random times in [0, 1), seeded.
    """
    times: dict[str, list[float]] = {u: [] for u in ds.user_ids}
    if path.is_file():
        for line in path.open("rb"):
            try:
                event = decode_interaction_event(line.strip())
            except ValueError:
                continue
            times[event.user_id].append(event.timestamp)
    elif inters := [p for p in path.glob("*.inter") if not p.name.endswith((".train.inter", ".valid.inter", ".test.inter"))]:
        lines = inters[0].read_text().splitlines()
        cols = [h.split(":")[0] for h in lines[0].split("\t")]
        u, t = cols.index("user_id"), cols.index("timestamp")
        for line in lines[1:]:
            row = line.split("\t")
            times[row[u]].append(float(row[t]))
    else:
        rng = np.random.default_rng(seed)
        return [np.sort(rng.random(len(s))) for s in ds.sequences]
    # the loaders order each user's events by (time, file order): a stable sort does the same
    return [np.sort(np.asarray(times[u], np.float64), kind="stable") for u in ds.user_ids]


def time_ordered(ds: SeqDataset, times: list[np.ndarray]) -> list[StreamEvent]:
    """Every interaction of ``ds`` as one stream, by time (ties: user order, then position)."""
    events = [
        StreamEvent(user, int(item), float(t))
        for user, seq, ts in zip(ds.user_ids, ds.sequences, times, strict=True)
        for item, t in zip(seq, ts, strict=True)
    ]
    return sorted(events, key=lambda e: e.time)

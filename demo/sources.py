"""What the demo replays: an initial catalogue, then a time-ordered stream of events.

Synthetic data by default (works on a fresh clone); ``--data PATH`` replays a real data set
through the model's loaders. The interactions before the replayed window are the history the
demo pre-trains its first model on. Items first clicked late in a real stream are held back and
published just before their first interaction, so the demo shows cold start on real data too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from learnrec.demo.synthetic import SyntheticConfig, generate
from learnrec.shared.schemas import InteractionEvent, ItemEvent


@dataclass
class DemoData:
    """``catalogue`` is published first, then ``stream`` live; ``history`` is the interaction log
    from before the demo (items of ``catalogue``), for offline pre-training."""

    name: str
    catalogue: list[ItemEvent]
    stream: list[ItemEvent | InteractionEvent]
    history: list[InteractionEvent]

    @property
    def titles(self) -> dict[str, str]:
        items = self.catalogue + [e for e in self.stream if isinstance(e, ItemEvent)]
        return {i.item_id: i.title for i in items}


def synthetic(seed: int, interactions: int, history: int) -> DemoData:
    """``history`` interactions over the initial catalogue happened before the demo; the next
    ``interactions`` (and the new items among them) are replayed live."""
    config = SyntheticConfig(seed=seed, interactions=history + interactions)
    catalogue, stream = generate(config)
    known = {item.item_id for item in catalogue.items}
    past: list[InteractionEvent] = []
    live: list[ItemEvent | InteractionEvent] = []
    for _, event in stream:
        if isinstance(event, InteractionEvent) and len(past) < history and event.item_id in known:
            past.append(event)
        elif len(past) >= history:
            live.append(event)
        elif isinstance(event, ItemEvent):  # arrived during the history: part of the catalogue
            catalogue.items.append(event)
            known.add(event.item_id)
    return DemoData("synthetic", catalogue.items, live, past)


def real(path: Path, max_interactions: int, cold_fraction: float = 0.05, seed: int = 0) -> DemoData:
    """A real data set in time order (as :mod:`learnrec.trainer.replay` orders it): its last
    ``max_interactions`` events are replayed live, everything before is the history.

    New items arrive just before their first interaction in the live window: those first
    interacted with there, plus (as in the cold-start split) a seeded ``cold_fraction`` of the
    catalogue drawn from the window's items, whose earlier interactions are left out of the
    history. Data without real time (amazon-scientific) has few of the first kind."""
    from learnrec.trainer.data import load_dataset
    from learnrec.trainer.stream_order import event_times, time_ordered

    dataset = load_dataset(path)
    everything = time_ordered(dataset, event_times(path, dataset))
    window_start = max(0, len(everything) - max_interactions)
    first_seen: dict[int, int] = {}
    for position, event in enumerate(everything):
        first_seen.setdefault(event.item, position)
    late = {item for item, position in first_seen.items() if position >= window_start}
    in_window = sorted({event.item for event in everything[window_start:]} - late)
    rng = random.Random(seed)
    late |= set(rng.sample(in_window, min(len(in_window), int(cold_fraction * dataset.n_items))))
    first_seen = {}
    for position, event in enumerate(everything[window_start:], start=window_start):
        first_seen.setdefault(event.item, position)

    def item_event(index: int, timestamp: float) -> ItemEvent:
        return ItemEvent(item_id=dataset.item_ids[index], timestamp=timestamp,
                         **_fields_of(dataset.item_texts[index]))

    catalogue = [item_event(i, 0.0) for i in range(dataset.n_items) if i not in late]
    stream: list[ItemEvent | InteractionEvent] = []
    for position, event in enumerate(everything[window_start:], start=window_start):
        if event.item in late and first_seen[event.item] == position:
            stream.append(item_event(event.item, event.time))
        stream.append(InteractionEvent(event_id=f"{dataset.name}-{position}", user_id=event.user,
                                       item_id=dataset.item_ids[event.item], action="click",
                                       timestamp=event.time))
    past = [
        InteractionEvent(event_id=f"{dataset.name}-{position}", user_id=event.user,
                         item_id=dataset.item_ids[event.item], action="click", timestamp=event.time)
        for position, event in enumerate(everything[:window_start])
        if event.item not in late
    ]
    return DemoData(dataset.name, catalogue, stream, past)


def _fields_of(text: str) -> dict[str, str]:
    """Split a loader's ``Title: t. Brand: b. Category: c`` text back into event fields."""
    fields: dict[str, str] = {}
    rest = text.removeprefix("Title: ")
    for name, marker in (("category", ". Category: "), ("brand", ". Brand: ")):
        rest, found, value = rest.partition(marker) if marker in rest else (rest, "", "")
        if found:
            fields[name] = value.strip()[:200 if name == "brand" else 500]
    fields["title"] = rest.strip()[:1000] or text[:1000]
    return fields

"""What the demo replays: an initial catalogue, then a time-ordered stream of events.

Synthetic data by default (works on a fresh clone); ``--data PATH`` replays a real data set
through the model's loaders. Items first clicked late in a real stream are held back and
published just before their first interaction, so the demo shows cold start on real data too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from demo.synthetic import SyntheticConfig, generate
from shared.schemas import InteractionEvent, ItemEvent


@dataclass
class DemoData:
    name: str
    catalogue: list[ItemEvent]
    stream: list[ItemEvent | InteractionEvent]

    @property
    def titles(self) -> dict[str, str]:
        items = self.catalogue + [e for e in self.stream if isinstance(e, ItemEvent)]
        return {i.item_id: i.title for i in items}


def synthetic(seed: int, interactions: int) -> DemoData:
    config = SyntheticConfig(seed=seed, interactions=interactions)
    catalogue, stream = generate(config)
    return DemoData("synthetic", catalogue.items, [event for _, event in stream])


def real(path: Path, max_interactions: int, catalogue_fraction: float = 0.3) -> DemoData:
    """A real data set in time order (by timestamp where the data has it, else by sequence
    position interleaved across users), cut to its last ``max_interactions`` events."""
    from trainer.replay_stream import time_ordered_interactions

    from trainer.data import load_dataset

    dataset = load_dataset(path)
    ordered = time_ordered_interactions(dataset, path)[-max_interactions:]
    first_seen: dict[int, int] = {}
    for position, (_, _, item) in enumerate(ordered):
        first_seen.setdefault(item, position)
    cutoff = int(len(ordered) * catalogue_fraction)
    late = {item for item, position in first_seen.items() if position >= cutoff}

    def item_event(index: int, timestamp: float) -> ItemEvent:
        text = dataset.item_texts[index]
        return ItemEvent(item_id=dataset.item_ids[index], title=text[:1000], timestamp=timestamp)

    catalogue = [item_event(i, 0.0) for i in range(dataset.n_items) if i not in late]
    stream: list[ItemEvent | InteractionEvent] = []
    for position, (timestamp, user, item) in enumerate(ordered):
        if item in late and first_seen[item] == position:
            stream.append(item_event(item, timestamp))
        stream.append(InteractionEvent(event_id=f"{dataset.name}-{position}", user_id=dataset.user_ids[user],
                                       item_id=dataset.item_ids[item], action="click", timestamp=timestamp))
    return DemoData(dataset.name, catalogue, stream)

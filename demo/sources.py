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
    """A real data set in time order (as :mod:`trainer.replay` orders it), cut to its last
    ``max_interactions`` events."""
    from trainer.data import load_dataset
    from trainer.replay import event_times, time_ordered

    dataset = load_dataset(path)
    ordered = time_ordered(dataset, event_times(path, dataset))[-max_interactions:]
    first_seen: dict[int, int] = {}
    for position, event in enumerate(ordered):
        first_seen.setdefault(event.item, position)
    cutoff = int(len(ordered) * catalogue_fraction)
    late = {item for item, position in first_seen.items() if position >= cutoff}

    def item_event(index: int, timestamp: float) -> ItemEvent:
        return ItemEvent(item_id=dataset.item_ids[index], timestamp=timestamp,
                         **_fields_of(dataset.item_texts[index]))

    catalogue = [item_event(i, 0.0) for i in range(dataset.n_items) if i not in late]
    stream: list[ItemEvent | InteractionEvent] = []
    for position, event in enumerate(ordered):
        if event.item in late and first_seen[event.item] == position:
            stream.append(item_event(event.item, event.time))
        stream.append(InteractionEvent(event_id=f"{dataset.name}-{position}", user_id=event.user,
                                       item_id=dataset.item_ids[event.item], action="click",
                                       timestamp=event.time))
    return DemoData(dataset.name, catalogue, stream)


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

"""A seeded generator of a realistic small catalogue and of users whose tastes drift.

Items are grouped by topic; each topic has its own vocabulary, brands and category path, so the
item texts carry real words a language model understands (and a new item's text alone says what
it is about). Users prefer two topics, are loyal to one brand per topic about half the time, and
now and then drift to a new topic. New items keep arriving during the stream, so cold start is
exercised.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from learnrec.shared.schemas import InteractionEvent, ItemEvent

TOPICS: dict[str, dict[str, list[str] | str]] = {
    "astronomy": {
        "category": "Science > Optics > Telescopes",
        "brands": ["Celestron", "Orion", "Meade", "SkyWatcher"],
        "nouns": ["refractor telescope", "star chart", "eyepiece", "equatorial mount", "moon filter",
                  "planisphere", "finder scope", "astronomy binoculars"],
        "adjectives": ["achromatic", "wide-field", "computerized", "portable", "70mm", "high-power"],
    },
    "coffee": {
        "category": "Kitchen > Coffee & Tea",
        "brands": ["Hario", "Baratza", "Bialetti", "Fellow"],
        "nouns": ["burr grinder", "pour-over kettle", "espresso tamper", "moka pot", "milk frother",
                  "coffee scale", "french press", "cold brew jar"],
        "adjectives": ["gooseneck", "stainless", "ceramic", "manual", "precision", "insulated"],
    },
    "woodworking": {
        "category": "Tools > Hand Tools > Woodworking",
        "brands": ["Stanley", "Irwin", "Narex", "Bosch"],
        "nouns": ["chisel set", "block plane", "dovetail saw", "wood clamp", "marking gauge",
                  "sanding block", "router bit set", "workbench vise"],
        "adjectives": ["bevel-edge", "hardened", "low-angle", "quick-release", "carbide", "oak-handled"],
    },
    "running": {
        "category": "Sports > Running",
        "brands": ["Asics", "Garmin", "Brooks", "Salomon"],
        "nouns": ["trail shoes", "GPS watch", "hydration vest", "running socks", "heart rate strap",
                  "reflective jacket", "compression tights", "energy gel pack"],
        "adjectives": ["lightweight", "waterproof", "cushioned", "breathable", "marathon", "reflective"],
    },
    "photography": {
        "category": "Electronics > Camera & Photo",
        "brands": ["Canon", "Nikon", "Manfrotto", "Sigma"],
        "nouns": ["prime lens", "carbon tripod", "camera bag", "ND filter", "flash unit",
                  "memory card", "lens hood", "remote shutter"],
        "adjectives": ["50mm", "full-frame", "weather-sealed", "compact", "fast-aperture", "macro"],
    },
    "gardening": {
        "category": "Garden > Tools & Seeds",
        "brands": ["Fiskars", "Gardena", "Burpee", "Felco"],
        "nouns": ["pruning shears", "tomato seeds", "garden hose", "raised bed kit", "compost bin",
                  "watering can", "soil test kit", "trowel"],
        "adjectives": ["heirloom", "ergonomic", "expandable", "organic", "rust-proof", "cedar"],
    },
    "chemistry": {
        "category": "Industrial & Scientific > Lab Supplies",
        "brands": ["Pyrex", "Eisco", "Kimble", "Thermo"],
        "nouns": ["beaker set", "graduated cylinder", "pipette", "test tube rack", "erlenmeyer flask",
                  "magnetic stirrer", "pH meter", "lab goggles"],
        "adjectives": ["borosilicate", "autoclavable", "graduated", "digital", "heat-resistant", "sterile"],
    },
    "electronics": {
        "category": "Electronics > Components & DIY",
        "brands": ["Arduino", "Raspberry", "Adafruit", "Hakko"],
        "nouns": ["soldering iron", "breadboard kit", "multimeter", "microcontroller board",
                  "jumper wires", "oscilloscope probe", "servo motor", "LED strip"],
        "adjectives": ["temperature-controlled", "solderless", "auto-ranging", "programmable", "12V", "USB"],
    },
}


@dataclass(frozen=True)
class SyntheticConfig:
    seed: int = 7
    initial_items: int = 400
    new_items: int = 80          # arrive during the stream
    users: int = 300
    interactions: int = 6_000
    drift_probability: float = 0.02  # per interaction, a user adopts a new favourite topic
    brand_loyalty: float = 0.5       # how often a user picks their favourite brand of the topic


@dataclass
class Catalogue:
    items: list[ItemEvent]
    topic_of: dict[str, str]


def _make_item(rng: random.Random, topic: str, n: int, timestamp: float) -> ItemEvent:
    spec = TOPICS[topic]
    brand = rng.choice(spec["brands"])  # type: ignore[arg-type]
    noun = rng.choice(spec["nouns"])  # type: ignore[arg-type]
    adjective = rng.choice(spec["adjectives"])  # type: ignore[arg-type]
    model = f"{brand[:2].upper()}-{rng.randrange(100, 1000)}"
    return ItemEvent(
        item_id=f"{topic[:4]}-{n:05d}",
        title=f"{brand} {adjective} {noun} {model}",
        brand=brand,
        category=str(spec["category"]),
        description=f"A {adjective} {noun} by {brand} for {topic} enthusiasts.",
        price=round(rng.uniform(5, 400), 2),
        timestamp=timestamp,
    )


def generate(config: SyntheticConfig = SyntheticConfig(), start_time: float = 1_700_000_000.0
             ) -> tuple[Catalogue, list[tuple[float, ItemEvent | InteractionEvent]]]:
    """The initial catalogue and a time-ordered stream of (time, event), new items included."""
    rng = random.Random(config.seed)
    topics = list(TOPICS)
    items: list[ItemEvent] = []
    topic_of: dict[str, str] = {}
    for n in range(config.initial_items):
        topic = topics[n % len(topics)]
        item = _make_item(rng, topic, n, start_time)
        items.append(item)
        topic_of[item.item_id] = topic
    by_topic: dict[str, list[str]] = {t: [i.item_id for i in items if topic_of[i.item_id] == t] for t in topics}

    brand_of = {i.item_id: i.brand for i in items}
    favourites = {f"user-{u:04d}": rng.sample(topics, 2) for u in range(config.users)}
    loyal_to = {(user, t): rng.choice(TOPICS[t]["brands"]) for user in favourites for t in topics}  # type: ignore[arg-type]
    stream: list[tuple[float, ItemEvent | InteractionEvent]] = []
    new_every = max(1, config.interactions // max(1, config.new_items))
    next_item = config.initial_items
    for step in range(config.interactions):
        t = start_time + 60.0 * (step + 1)
        if step % new_every == 0 and next_item < config.initial_items + config.new_items:
            topic = rng.choice(topics)
            item = _make_item(rng, topic, next_item, t)
            next_item += 1
            topic_of[item.item_id] = topic
            by_topic[topic].append(item.item_id)
            brand_of[item.item_id] = item.brand
            stream.append((t, item))
        user = f"user-{rng.randrange(config.users):04d}"
        if rng.random() < config.drift_probability:
            favourites[user] = [rng.choice(topics), favourites[user][0]]
        topic = favourites[user][0] if rng.random() < 0.7 else favourites[user][1]
        pool = by_topic[topic]
        if rng.random() < config.brand_loyalty:
            pool = [i for i in pool if brand_of[i] == loyal_to[(user, topic)]] or pool
        # Zipf-like popularity inside a topic, with the newest items boosted (novelty).
        weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(pool))]
        weights[-3:] = [w * 4 for w in weights[-3:]]
        item_id = rng.choices(pool, weights=weights)[0]
        stream.append((t, InteractionEvent(event_id=f"ev-{step:07d}", user_id=user, item_id=item_id,
                                           action="click", timestamp=t)))
    return Catalogue(items, topic_of), stream


def interleave(catalogue: Catalogue, stream: list[tuple[float, ItemEvent | InteractionEvent]]
               ) -> Iterator[ItemEvent | InteractionEvent]:
    """Every event in publication order: the initial catalogue first, then the stream."""
    yield from catalogue.items
    for _, event in stream:
        yield event

"""Item text in the LEARN template: ``Title: {title}. Brand: {brand}. Category: {category}``."""

from __future__ import annotations

from collections.abc import Mapping


def _clean(value: str | None) -> str:
    """Collapse whitespace and drop trailing periods so parts join with exactly one ``. ``."""
    if value is None:
        return ""
    return " ".join(str(value).split()).rstrip(". ")


def item_text(
    title: str,
    brand: str | None = None,
    category: str | None = None,
    description: str | None = None,
    attributes: Mapping[str, str] | None = None,
) -> str:
    """The text the content encoder sees for one item; empty optional parts are left out.

    Order matters for truncation: the encoder keeps the first ``max_tokens`` tokens, so the
    short identifying parts come first and the (possibly long) description last.
    """
    parts = [("Title", title), ("Brand", brand), ("Category", category)]
    parts += [(_clean(key).capitalize(), val) for key, val in (attributes or {}).items()]
    parts.append(("Description", description))
    return ". ".join(f"{name}: {text}" for name, raw in parts if (text := _clean(raw)))

"""Typed answers of the recommendations API (the shape of ``serving/api.py``'s responses)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ScoredItem(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    item_id: str
    score: float


class Recommendations(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    model_version: str
    source: str  # "personal" (from a history) or "popular" (no usable history)
    items: list[ScoredItem]
    unknown_item_ids: list[str] = Field(default_factory=list)

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.items]

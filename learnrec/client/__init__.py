"""learnrec's client: publish events to its Kafka topics (:class:`EventProducer`) and look
recommendations up over HTTP (:class:`RecommendationsClient`, :class:`AsyncRecommendationsClient`).

Importable without torch, transformers or onnxruntime; see docs/CLIENT.md.
"""

from learnrec.client.errors import BadRequest, ClientError, NotFound, Unauthorized, Unavailable
from learnrec.client.models import Recommendations, ScoredItem
from learnrec.client.producer import EventProducer, FailedEvent, PublishError
from learnrec.client.recommendations import AsyncRecommendationsClient, RecommendationsClient
from learnrec.shared.schemas import EventError, InteractionEvent, ItemEvent

__all__ = [
    "AsyncRecommendationsClient",
    "BadRequest",
    "ClientError",
    "EventError",
    "EventProducer",
    "FailedEvent",
    "InteractionEvent",
    "ItemEvent",
    "NotFound",
    "PublishError",
    "Recommendations",
    "RecommendationsClient",
    "ScoredItem",
    "Unauthorized",
    "Unavailable",
]

"""The HTTP API: GetRecommendations and GetPersonalizedRanking in Personalize's JSON shapes.

`requests` turns bodies into frozen, validated values; `service` computes lists through
connector.serving (the same code as the precomputed lists) and stores each served list under
its recommendationId; `app` is the aiohttp application around them. The errors the API turns
into status codes live here, next to the package they belong to, so `app` can map them by
meaning rather than by message.
"""

from __future__ import annotations

from connector.exceptions import StreamrecError


class ApiRequestError(StreamrecError, ValueError):
    """A request the API refuses as malformed (HTTP 400); the message names the field."""

    status = 400


class ResourceNotFoundError(ApiRequestError):
    """A request naming a filter, campaign or dataset the API does not have (HTTP 404,
    Personalize's ResourceNotFoundException)."""

    status = 404


class UnknownFilterError(ResourceNotFoundError):
    """A filterName or filterArn that names no filter of the dataset group."""


class ModelChangedError(StreamrecError, RuntimeError):
    """A filter mask was computed over another model version's items (a new version was
    swapped in during the request); the request can simply be retried (HTTP 503)."""

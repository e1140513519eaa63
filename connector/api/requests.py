"""Request bodies of GetRecommendations and GetPersonalizedRanking, parsed and validated.

Pure: a decoded JSON value in, a frozen dataclass out, or ApiRequestError whose message names
the field and the rule it breaks (`numResults must be an integer from 1 to 500, got 0`), so a
client can fix its request without reading our code. Field names, types and limits are
Personalize's (maps of strings, 150 context entries, 25 filterValues, one promotion). A
filter is named by `filterName` or by Personalize's `filterArn`, and a `campaignArn` or
`recommenderArn`, when given, must name the served dataset group (aws.py has the ARN forms).
Unknown fields are ignored, as AWS JSON APIs do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.api import ApiRequestError, aws

MAX_ID = 256
_CONTEXT_KEY = re.compile(r"[A-Za-z\d_]{1,150}")
_FILTER_KEY = re.compile(r"[A-Za-z0-9_]{1,50}")
_PROMOTION_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_]{0,62}")
MAX_METADATA_COLUMNS = 50


@dataclass(frozen=True)
class Limits:
    """The bounds a request is checked against (from ApiSettings)."""

    default_results: int = 25
    max_results: int = 500
    max_input_list: int = 500


@dataclass(frozen=True)
class FilterRef:
    """A named filter and the values of its $PARAMETERS."""

    name: str
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Promotion:
    """Personalize's promotion: a share of the list taken from what its own filter allows."""

    name: str
    percent: int
    filter: FilterRef


@dataclass(frozen=True)
class Who:
    """Whose history ranks the items: a user, or an anonymous session (or both)."""

    user_id: str | None
    session_id: str | None


@dataclass(frozen=True)
class RecommendationsRequest:
    """GetRecommendations."""

    who: Who
    num_results: int
    context: Mapping[str, str]
    filter: FilterRef | None
    promotion: Promotion | None
    metadata_columns: tuple[str, ...]


@dataclass(frozen=True)
class RankingRequest:
    """GetPersonalizedRanking."""

    who: Who
    input_list: tuple[str, ...]
    context: Mapping[str, str]
    filter: FilterRef | None
    metadata_columns: tuple[str, ...]


def parse_recommendations(body: Any, limits: Limits, group: str) -> RecommendationsRequest:
    """A GetRecommendations request to dataset group `group` from its decoded JSON body."""
    fields = _Fields(body, "")
    _check_campaign(fields, group)
    num_results = fields.integer("numResults", 1, limits.max_results, limits.default_results)
    promotions = fields.objects("promotions", 1)
    return RecommendationsRequest(
        who=_who(fields),
        num_results=num_results,
        context=fields.string_map("context", 150, _CONTEXT_KEY, 1000),
        filter=_filter(fields, group),
        promotion=_promotion(promotions[0], group) if promotions else None,
        metadata_columns=_metadata_columns(fields),
    )


def parse_ranking(body: Any, limits: Limits, group: str) -> RankingRequest:
    """A GetPersonalizedRanking request to dataset group `group` from its decoded JSON body."""
    fields = _Fields(body, "")
    _check_campaign(fields, group)
    return RankingRequest(
        who=_who(fields),
        input_list=fields.strings("inputList", limits.max_input_list, MAX_ID, required=True),
        context=fields.string_map("context", 150, _CONTEXT_KEY, 1000),
        filter=_filter(fields, group),
        metadata_columns=_metadata_columns(fields),
    )


def _check_campaign(fields: _Fields, group: str) -> None:
    for name in ("campaignArn", "recommenderArn"):
        if fields.body.get(name) is not None:
            aws.check_campaign(fields.body[name], fields.path(name), group)


def _who(fields: _Fields) -> Who:
    who = Who(fields.text("userId", MAX_ID), fields.text("sessionId", MAX_ID))
    if who.user_id is None and who.session_id is None:
        raise ApiRequestError("userId or sessionId is required")
    return who


def _filter(fields: _Fields, group: str) -> FilterRef | None:
    name = fields.text("filterName", MAX_ID)
    if fields.body.get("filterArn") is not None:
        named = aws.filter_name(fields.body["filterArn"], fields.path("filterArn"), group)
        if name is not None and name != named:
            raise ApiRequestError(
                f"{fields.path('filterArn')} and {fields.path('filterName')} name two filters"
            )
        name = named
    values = fields.string_map("filterValues", 25, _FILTER_KEY, 1000)
    if name is None and values:
        raise ApiRequestError(f"{fields.path('filterValues')} needs a filterArn or filterName")
    return FilterRef(name, values) if name is not None else None


def _promotion(fields: _Fields, group: str) -> Promotion:
    name = fields.text("name", 63, required=True)
    if name is None or not _PROMOTION_NAME.fullmatch(name):
        raise ApiRequestError(
            f"{fields.path('name')} must start with a letter or digit and hold only letters, "
            "digits, '-' and '_'"
        )
    percent = fields.integer("percentPromotedItems", 1, 100, None)
    reference = _filter(fields, group)
    if reference is None:
        raise ApiRequestError(
            f"{fields.path('filterArn')} or {fields.path('filterName')} is required"
        )
    return Promotion(name, percent, reference)


def _metadata_columns(fields: _Fields) -> tuple[str, ...]:
    tables = fields.objects_map("metadataColumns")
    unknown = sorted(set(tables.body) - {"ITEMS"})
    if unknown:
        raise ApiRequestError(f"metadataColumns may only name ITEMS, not {unknown[0]!r}")
    return tables.strings("ITEMS", MAX_METADATA_COLUMNS, 150, required=False)


class _Fields:
    """Typed access to the fields of one JSON object; errors name the field's path."""

    def __init__(self, body: Any, prefix: str) -> None:
        if not isinstance(body, dict):
            raise ApiRequestError(f"{prefix or 'the request body'} must be a JSON object")
        self.body: dict[str, Any] = body
        self._prefix = prefix

    def path(self, name: str) -> str:
        """The field's name as the client wrote it, e.g. `promotions[0].name`."""
        return f"{self._prefix}.{name}" if self._prefix else name

    def text(self, name: str, longest: int, required: bool = False) -> str | None:
        """A string of 1 to `longest` characters, or None when absent (null counts as absent)."""
        value = self.body.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not 1 <= len(value) <= longest:
            raise ApiRequestError(
                f"{self.path(name)} must be a string of 1 to {longest} characters"
            )
        return value

    def integer(self, name: str, low: int, high: int, default: int | None) -> int:
        """An integer within [low, high]; `default` when absent (required when None)."""
        value = self.body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            shown = "nothing" if value is None else repr(value)
            raise ApiRequestError(
                f"{self.path(name)} must be an integer from {low} to {high}, got {shown}"
            )
        return value

    def strings(self, name: str, most: int, longest: int, required: bool) -> tuple[str, ...]:
        """A list of up to `most` strings of 1 to `longest` characters."""
        value = self.body.get(name)
        if value is None and not required:
            return ()
        rule = f"a list of 1 to {most} strings of 1 to {longest} characters"
        if not isinstance(value, list) or not 1 <= len(value) <= most:
            raise ApiRequestError(f"{self.path(name)} must be {rule}")
        if not all(isinstance(item, str) and 1 <= len(item) <= longest for item in value):
            raise ApiRequestError(f"{self.path(name)} must be {rule}")
        return tuple(value)

    def string_map(
        self, name: str, most: int, key: re.Pattern[str], longest: int
    ) -> dict[str, str]:
        """An object of up to `most` string values (of at most `longest` characters) whose
        keys match `key`; {} when absent."""
        value = self.body.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or len(value) > most:
            raise ApiRequestError(f"{self.path(name)} must be an object of at most {most} entries")
        for entry, text in value.items():
            if not key.fullmatch(entry):
                raise ApiRequestError(f"{self.path(name)} has an invalid key {entry!r}")
            if not isinstance(text, str) or len(text) > longest:
                raise ApiRequestError(
                    f"{self.path(name)}.{entry} must be a string of at most {longest} characters"
                )
        return dict(value)

    def objects(self, name: str, most: int) -> list[_Fields]:
        """A list of up to `most` objects; [] when absent."""
        value = self.body.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or len(value) > most:
            raise ApiRequestError(f"{self.path(name)} must be a list of at most {most} objects")
        return [_Fields(item, f"{self.path(name)}[{index}]") for index, item in enumerate(value)]

    def objects_map(self, name: str) -> _Fields:
        """A nested object; an empty one when absent."""
        value = self.body.get(name)
        return _Fields({} if value is None else value, self.path(name))

"""What Amazon Personalize's SDK clients send and expect, beyond the request shapes: ARNs that
name streamrec's dataset group, its filters and datasets, and AWS's JSON error protocol
(docs/api.md, "From Personalize").

ARNs take any partition, region and account; their resource names the group:

    arn:aws:personalize:<region>:<account>:campaign/<group>          (or recommender/<group>)
    arn:aws:personalize:<region>:<account>:filter/<group>/<name>     (or filter/<name>)
    arn:aws:personalize:<region>:<account>:dataset/<group>/ITEMS     (USERS, INTERACTIONS)

An error answer carries its AWS type twice, as botocore looks for it: in the
`x-amzn-ErrorType` header and as `__type` in the body, beside `message`; botocore then raises
the service model's exception class of that name (InvalidInputException, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from connector.api import ApiRequestError, ResourceNotFoundError
from connector.ingest.limits import MAX_SENT_AT

_ARN = re.compile(r"arn:[a-z\d-]+:personalize:[^:]*:[^:]*:(?P<kind>[a-z-]+)/(?P<name>.+)")
DATASETS = {"INTERACTIONS": "interactions", "ITEMS": "items", "USERS": "users"}
# The AWS error type of each status the API answers with (ResourceNotFoundException for
# 404s that name a resource is chosen where the error is raised).
ERROR_TYPES = {
    400: "InvalidInputException",
    401: "UnrecognizedClientException",
    403: "InvalidSignatureException",
    404: "UnknownOperationException",
    405: "UnknownOperationException",
    408: "RequestTimeoutException",
    413: "RequestEntityTooLargeException",
    415: "UnsupportedMediaTypeException",
    429: "ThrottlingException",
    500: "InternalFailure",
    503: "ServiceUnavailableException",
}
ERROR_TYPE_HEADER = "x-amzn-ErrorType"


@dataclass(frozen=True)
class Arn:
    """A Personalize ARN's resource type and the parts of its name."""

    kind: str
    parts: tuple[str, ...]


def parse_arn(value: object, field: str) -> Arn:
    """The resource of a Personalize ARN; ApiRequestError naming `field` when it is none."""
    found = _ARN.fullmatch(value) if isinstance(value, str) and len(value) <= 256 else None
    if found is None:
        raise ApiRequestError(
            f"{field} must be an ARN like arn:aws:personalize:<region>:<account>:<type>/<name>"
        )
    return Arn(found["kind"], tuple(found["name"].split("/")))


def check_campaign(value: object, field: str, group: str) -> None:
    """A campaignArn or recommenderArn must name the served dataset group."""
    arn = parse_arn(value, field)
    if arn.kind not in ("campaign", "recommender") or arn.parts != (group,):
        raise ResourceNotFoundError(
            f"{field} {value} is not served here: this API serves dataset group {group!r}, "
            f"named arn:aws:personalize:<region>:<account>:campaign/{group}"
        )


def filter_name(value: object, field: str, group: str) -> str:
    """The filter a filterArn names: `filter/<group>/<name>`, or `filter/<name>` of the
    served group. A filter of another group is refused, as Personalize refuses a filter of
    another dataset group than the campaign's."""
    arn = parse_arn(value, field)
    if arn.kind != "filter" or len(arn.parts) not in (1, 2) or not all(arn.parts):
        raise ApiRequestError(f"{field} must name a filter: ...:filter/{group}/<name>")
    if len(arn.parts) == 2 and arn.parts[0] != group:
        raise ApiRequestError(
            f"{field} names a filter of dataset group {arn.parts[0]!r}, not of {group!r}"
        )
    return arn.parts[-1]


def dataset_of(value: object, field: str, group: str, expected: str) -> None:
    """A datasetArn must name the served group's `expected` dataset (items or users)."""
    arn = parse_arn(value, field)
    kind = DATASETS.get(arn.parts[-1].upper()) if arn.kind == "dataset" else None
    if len(arn.parts) != 2 or arn.parts[0] != group or kind != expected:
        raise ResourceNotFoundError(
            f"{field} {value} is not a dataset here: this one is "
            f"arn:aws:personalize:<region>:<account>:dataset/{group}/{expected.upper()}"
        )


def epoch_seconds(value: object, field: str) -> int:
    """sentAt as the SDKs send it (epoch seconds, possibly fractional, or an ISO-8601 time
    with a zone), in whole epoch seconds, within what the connector stores (1970-2099)."""
    seconds = None
    if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
        seconds = int(value) if abs(value) < 2**63 else None
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            seconds = int(parsed.timestamp())
    if seconds is None or not 0 <= seconds < MAX_SENT_AT:
        raise ApiRequestError(
            f"{field} must be epoch seconds or an ISO-8601 time with a zone, from 1970 to "
            f"2099, got {str(value):.80}"
        )
    return seconds


def error_document(
    status: int, message: str, exc: BaseException | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, JSON body) of an error answer in AWS's JSON error protocol."""
    kind = error_type(status, exc)
    return {ERROR_TYPE_HEADER: kind}, {"__type": kind, "message": message}


def error_type(status: int, exc: BaseException | None) -> str:
    """The AWS error type of an answer with `status`, raised as `exc`."""
    if isinstance(exc, ResourceNotFoundError):
        return "ResourceNotFoundException"
    return ERROR_TYPES.get(status, "InternalFailure" if status >= 500 else "InvalidInputException")

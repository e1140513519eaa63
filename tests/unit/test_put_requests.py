"""PutEvents, PutItems and PutUsers bodies: what Personalize refuses at once is refused with
the field named, and what it accepts becomes the records the connector reads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

import schemas
from connector.api import ApiRequestError, ResourceNotFoundError, aws
from connector.api.put_requests import put_entries, put_events
from connector.registry.rules import check_schema

INTERACTIONS = check_schema("interactions", schemas.load("interactions.avsc"))
ITEMS = check_schema("items", schemas.load("items.avsc"))
USERS = check_schema("users", schemas.load("users.avsc"))
ITEMS_ARN = "arn:aws:personalize:us-east-1:1:dataset/shop/ITEMS"


def body(**overrides: Any) -> dict[str, Any]:
    event = {"eventType": "click", "itemId": "i1", "sentAt": 1_700_000_000.75}
    return {"trackingId": "t-1", "sessionId": "s1", "eventList": [event], **overrides}


def test_an_sdk_request_becomes_one_envelope_keyed_by_its_user() -> None:
    event = {
        "eventId": "e1",
        "eventType": "click",
        "itemId": "i1",
        "sentAt": "2023-11-14T22:13:20Z",
        "properties": '{"device": "phone"}',
        "impression": ["i1", "i2"],
        "recommendationId": "r-1",
        "metricAttribution": {"eventAttributionSource": "email"},
        "eventValue": 2.5,
        "somethingNew": 1,  # unknown fields are ignored, as AWS JSON APIs do
    }
    accepted = put_events(body(userId="u1", eventList=[event]), "t-1", INTERACTIONS)
    [record] = accepted.records
    envelope = orjson.loads(record.value)
    assert (record.key, accepted.count) == (b"u1", 1)
    assert envelope["userId"] == "u1" and envelope["sessionId"] == "s1"
    sent = {k: v for k, v in event.items() if k != "somethingNew"}
    assert envelope["eventList"] == [{**sent, "sentAt": 1_700_000_000}]


def test_anonymous_events_are_keyed_by_session_and_epoch_seconds_are_whole() -> None:
    accepted = put_events(body(), "t-1", INTERACTIONS)
    assert accepted.records[0].key == b"s1"
    assert orjson.loads(accepted.records[0].value)["eventList"][0]["sentAt"] == 1_700_000_000


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trackingId": "t-2"}, "trackingId 't-2' is not this dataset group's tracker"),
        ({"sessionId": ""}, "sessionId must be a string of 1 to 256"),
        ({"eventList": []}, "eventList must be a list of 1 to 10"),
        ({"eventList": [{"eventType": "click", "sentAt": 1}] * 11}, "eventList must be a list"),
        ({"eventList": [{"sentAt": 1}]}, "eventList[0].eventType must be a string"),
        ({"eventList": [{"eventType": "x"}]}, "eventList[0].sentAt must be epoch seconds"),
        ({"eventList": [{"eventType": "x", "sentAt": "yesterday"}]}, "sentAt must be epoch"),
        ({"eventList": [{"eventType": "x", "sentAt": "2023-11-14T22:13:20"}]}, "with a zone"),
        ({"eventList": [{"eventType": "x", "sentAt": 5_000_000_000}]}, "from 1970 to 2099"),
        ({"eventList": [{"eventType": "x", "sentAt": "1960-01-01T00:00:00Z"}]}, "1970 to 2099"),
        (
            {"eventList": [{"eventType": "x", "sentAt": 1, "impression": ["é" * 256] * 25}]},
            "eventList[0]: event is",  # Personalize counts characters, the connector bytes
        ),
        ({"eventList": [{"eventType": "x", "sentAt": 1, "eventValue": "9"}]}, "eventValue"),
        (
            {"eventList": [{"eventType": "x", "sentAt": 1, "impression": ["a"] * 26}]},
            "impression must be a list of 1 to 25",
        ),
        (
            {"eventList": [{"eventType": "x", "sentAt": 1, "recommendationId": "r" * 41}]},
            "recommendationId must be a string of 1 to 40",
        ),
        (
            {"eventList": [{"eventType": "x", "sentAt": 1, "properties": "x" * 1025}]},
            "properties must be a JSON object",
        ),
        (
            {"eventList": [{"eventType": "x", "sentAt": 1, "properties": '{"shoe": 1}'}]},
            "eventList[0]: property shoe maps to SHOE",
        ),
        (
            {"eventList": [{"eventType": "x", "sentAt": 1, "metricAttribution": {"other": "y"}}]},
            "eventAttributionSource must be printable ASCII",
        ),
    ],
)
def test_what_personalize_refuses_at_once_is_refused_with_the_field(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiRequestError) as refused:
        put_events(body(**overrides), "t-1", INTERACTIONS)
    assert message in str(refused.value)


def test_items_become_one_record_each_keyed_by_item() -> None:
    items = [
        {"itemId": "a", "properties": '{"title": "A", "genres": "x|y"}'},
        {"itemId": "b"},
    ]
    accepted = put_entries({"datasetArn": ITEMS_ARN, "items": items}, "items", "shop", ITEMS)
    assert [r.key for r in accepted.records] == [b"a", b"b"]
    assert [orjson.loads(r.value) for r in accepted.records] == [{"items": [i]} for i in items]


@pytest.mark.parametrize(
    ("request_body", "error", "message"),
    [
        ({"items": [{"itemId": "a"}]}, ApiRequestError, "datasetArn must be an ARN"),
        (
            {"datasetArn": ITEMS_ARN.replace("ITEMS", "USERS"), "items": [{"itemId": "a"}]},
            ResourceNotFoundError,
            "dataset/shop/ITEMS",
        ),
        (
            {"datasetArn": ITEMS_ARN.replace("shop", "other"), "items": [{"itemId": "a"}]},
            ResourceNotFoundError,
            "is not a dataset here",
        ),
        ({"datasetArn": ITEMS_ARN, "items": [{"itemId": "a"}] * 11}, ApiRequestError, "1 to 10"),
        ({"datasetArn": ITEMS_ARN, "items": [{}]}, ApiRequestError, "items[0].itemId"),
        (
            {"datasetArn": ITEMS_ARN, "items": [{"itemId": "a", "properties": '{"price": 1}'}]},
            ApiRequestError,
            "PRICE",
        ),
    ],
)
def test_put_items_refusals_name_the_field(
    request_body: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as refused:
        put_entries(request_body, "items", "shop", ITEMS)
    assert message in str(refused.value)


def test_users_are_checked_against_the_users_schema() -> None:
    arn = "arn:aws:personalize:us-east-1:1:dataset/shop/USERS"
    users = [{"userId": "u1", "properties": {"age": 30}}]
    accepted = put_entries({"datasetArn": arn, "users": users}, "users", "shop", USERS)
    assert orjson.loads(accepted.records[0].value) == {"users": users}
    with pytest.raises(ApiRequestError, match="AGE must be int"):
        put_entries(
            {"datasetArn": arn, "users": [{"userId": "u1", "properties": {"age": "old"}}]},
            "users",
            "shop",
            USERS,
        )


def test_arns_name_the_group_its_filters_and_datasets() -> None:
    aws.check_campaign("arn:aws:personalize:eu-west-1:123:campaign/shop", "campaignArn", "shop")
    aws.check_campaign("arn:aws-cn:personalize:x:y:recommender/shop", "recommenderArn", "shop")
    with pytest.raises(ResourceNotFoundError):
        aws.check_campaign("arn:aws:personalize:eu-west-1:123:campaign/other", "c", "shop")
    with pytest.raises(ApiRequestError, match="must be an ARN"):
        aws.check_campaign("shop", "campaignArn", "shop")
    name = aws.filter_name("arn:aws:personalize:r:a:filter/shop/new", "filterArn", "shop")
    assert name == "new"
    assert aws.filter_name("arn:aws:personalize:r:a:filter/new", "filterArn", "shop") == "new"
    with pytest.raises(ApiRequestError, match="dataset group 'other'"):
        aws.filter_name("arn:aws:personalize:r:a:filter/other/new", "filterArn", "shop")
    with pytest.raises(ApiRequestError, match="must name a filter"):
        aws.filter_name("arn:aws:personalize:r:a:campaign/shop", "filterArn", "shop")


def test_errors_carry_their_aws_type_where_botocore_reads_it() -> None:
    headers, document = aws.error_document(404, "no", ResourceNotFoundError("no"))
    assert headers == {"x-amzn-ErrorType": "ResourceNotFoundException"}
    assert document == {"__type": "ResourceNotFoundException", "message": "no"}
    assert aws.error_type(400, ApiRequestError("x")) == "InvalidInputException"
    assert aws.error_type(429, None) == "ThrottlingException"
    assert aws.error_type(502, None) == "InternalFailure"

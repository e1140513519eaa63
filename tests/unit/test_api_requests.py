"""Request bodies of the HTTP API: Personalize's shapes parsed, every broken rule named."""

from __future__ import annotations

from typing import Any

import pytest

from connector.api import ApiRequestError
from connector.api.requests import (
    FilterRef,
    Limits,
    Promotion,
    Who,
    parse_ranking,
    parse_recommendations,
)

LIMITS = Limits(default_results=25, max_results=500, max_input_list=500)
GROUP = "x"  # the served dataset group, which ARNs must name


def test_a_full_get_recommendations_body_is_parsed() -> None:
    request = parse_recommendations(
        {
            "userId": "u1",
            "numResults": 10,
            "context": {"DEVICE": "tv"},
            "filterName": "no-clicked",
            "filterValues": {"GENRES": '"drama"'},
            "promotions": [
                {
                    "name": "in-house",
                    "percentPromotedItems": 20,
                    "filterName": "own",
                    "filterValues": {"OWNER": '"us"'},
                }
            ],
            "metadataColumns": {"ITEMS": ["TITLE", "GENRES"]},
            "campaignArn": "arn:aws:personalize:eu:1:campaign/x",  # names the served group
        },
        LIMITS,
        GROUP,
    )
    assert request.who == Who("u1", None)
    assert request.num_results == 10
    assert request.context == {"DEVICE": "tv"}
    assert request.filter == FilterRef("no-clicked", {"GENRES": '"drama"'})
    assert request.promotion == Promotion("in-house", 20, FilterRef("own", {"OWNER": '"us"'}))
    assert request.metadata_columns == ("TITLE", "GENRES")


def test_defaults_follow_personalize() -> None:
    request = parse_recommendations({"sessionId": "s1"}, LIMITS, GROUP)
    assert request.who == Who(None, "s1")
    assert request.num_results == 25
    assert (request.context, request.filter, request.promotion) == ({}, None, None)
    assert request.metadata_columns == ()


def test_the_default_and_maximum_come_from_the_limits() -> None:
    limits = Limits(default_results=7, max_results=8, max_input_list=2)
    assert parse_recommendations({"userId": "u"}, limits, GROUP).num_results == 7
    with pytest.raises(ApiRequestError, match="from 1 to 8, got 9"):
        parse_recommendations({"userId": "u", "numResults": 9}, limits, GROUP)
    with pytest.raises(ApiRequestError, match="inputList must be a list of 1 to 2 strings"):
        parse_ranking({"userId": "u", "inputList": ["a", "b", "c"]}, limits, GROUP)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the request body must be a JSON object"),
        ({}, "userId or sessionId is required"),
        ({"userId": ""}, "userId must be a string of 1 to 256 characters"),
        ({"userId": 5}, "userId must be a string of 1 to 256 characters"),
        ({"sessionId": "s" * 257}, "sessionId must be a string of 1 to 256 characters"),
        ({"userId": "u", "numResults": 0}, "numResults must be an integer from 1 to 500, got 0"),
        ({"userId": "u", "numResults": 501}, "numResults must be an integer from 1 to 500"),
        ({"userId": "u", "numResults": "5"}, "numResults must be an integer from 1 to 500"),
        ({"userId": "u", "numResults": True}, "numResults must be an integer"),
        ({"userId": "u", "numResults": 2.5}, "numResults must be an integer"),
        ({"userId": "u", "context": ["DEVICE"]}, "context must be an object"),
        ({"userId": "u", "context": {"DEVICE": 1}}, "context.DEVICE must be a string"),
        ({"userId": "u", "context": {"bad key": "x"}}, "context has an invalid key 'bad key'"),
        ({"userId": "u", "filterValues": {"A": "1"}}, "filterValues needs a filterArn or"),
        ({"userId": "u", "filterArn": "arn:x"}, "filterArn must be an ARN like"),
        (
            {"userId": "u", "filterArn": "arn:aws:personalize:r:1:filter/x/a", "filterName": "b"},
            "filterArn and filterName name two filters",
        ),
        (
            {"userId": "u", "campaignArn": "arn:aws:personalize:r:1:campaign/other"},
            "campaignArn arn:aws:personalize:r:1:campaign/other is not served here",
        ),
        ({"userId": "u", "promotions": {}}, "promotions must be a list of at most 1 objects"),
        ({"userId": "u", "promotions": [{}, {}]}, "promotions must be a list of at most 1"),
        ({"userId": "u", "promotions": ["x"]}, "promotions[0] must be a JSON object"),
        ({"userId": "u", "metadataColumns": {"USERS": ["AGE"]}}, "may only name ITEMS"),
        ({"userId": "u", "metadataColumns": {"ITEMS": "TITLE"}}, "metadataColumns.ITEMS must"),
    ],
)
def test_bad_recommendation_requests_are_refused_naming_the_field(body: Any, message: str) -> None:
    with pytest.raises(ApiRequestError) as refused:
        parse_recommendations(body, LIMITS, GROUP)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("promotion", "message"),
    [
        ({"percentPromotedItems": 10, "filterName": "f"}, "promotions[0].name must be a string"),
        (
            {"name": "-x", "percentPromotedItems": 10, "filterName": "f"},
            "promotions[0].name must start with a letter or digit",
        ),
        ({"name": "p", "filterName": "f"}, "promotions[0].percentPromotedItems must be an integer"),
        (
            {"name": "p", "percentPromotedItems": 101, "filterName": "f"},
            "percentPromotedItems must be an integer from 1 to 100, got 101",
        ),
        (
            {"name": "p", "percentPromotedItems": 10},
            "promotions[0].filterArn or promotions[0].filterName is required",
        ),
    ],
)
def test_a_promotion_needs_a_name_a_share_and_a_filter(
    promotion: dict[str, Any], message: str
) -> None:
    with pytest.raises(ApiRequestError) as refused:
        parse_recommendations({"userId": "u", "promotions": [promotion]}, LIMITS, GROUP)
    assert message in str(refused.value)


def test_a_ranking_request_needs_an_input_list_of_ids() -> None:
    request = parse_ranking(
        {"userId": "u", "inputList": ["a", "b"], "context": {"X": "1"}}, LIMITS, GROUP
    )
    assert request.input_list == ("a", "b")
    assert request.context == {"X": "1"}
    for bad in (None, [], ["a", ""], ["a", 3], "a"):
        with pytest.raises(ApiRequestError, match="inputList must be a list of 1 to 500 strings"):
            parse_ranking({"userId": "u", "inputList": bad}, LIMITS, GROUP)
    with pytest.raises(ApiRequestError, match="inputList must be a list of 1 to 500"):
        parse_ranking({"userId": "u", "inputList": [f"i{n}" for n in range(501)]}, LIMITS, GROUP)
    with pytest.raises(ApiRequestError, match="userId or sessionId is required"):
        parse_ranking({"inputList": ["a"]}, LIMITS, GROUP)


def test_parsed_requests_are_frozen() -> None:
    request = parse_recommendations({"userId": "u"}, LIMITS, GROUP)
    with pytest.raises(AttributeError):
        request.num_results = 3  # type: ignore[misc]


def test_a_filter_arn_names_a_filter_of_the_served_group() -> None:
    arn = "arn:aws:personalize:us-east-1:123456789012:filter/x/drama"
    body = {"userId": "u", "filterArn": arn, "filterValues": {"G": '"d"'}}
    assert parse_recommendations(body, LIMITS, GROUP).filter == FilterRef("drama", {"G": '"d"'})
    promotion = {"name": "p", "percentPromotedItems": 10, "filterArn": arn}
    parsed = parse_recommendations({"userId": "u", "promotions": [promotion]}, LIMITS, GROUP)
    assert parsed.promotion is not None and parsed.promotion.filter.name == "drama"

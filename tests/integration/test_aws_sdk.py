"""Amazon Personalize's own SDK clients (boto3) against `streamrec api`, unchanged but for
the endpoint, the credentials and the ARNs (docs/api.md, "From Personalize").

Why: code that already calls Personalize should run against streamrec as it is. Events,
items and users go in through `personalize-events` over HTTP, come out of Kafka into the
real connector path, and change what `personalize-runtime` answers; bad input and unknown
resources raise the exception classes botocore raises against Personalize; with API keys on,
a SigV4 signature made with the right secret passes and any other is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.auth
import pytest
import redis
from botocore.config import Config
from botocore.exceptions import ClientError

from connector.api.app import create_app
from connector.filters.store import open_filters
from connector.keys import Keys, Subject
from connector.model.model import Hyperparameters, Model
from connector.settings import ConnectorSettings
from connector.wiring import processors
from tests.integration.helpers import decode_rows, prepare_group, read_topic, source_records
from tests.integration.test_api import (
    COLD,
    Server,
    api_settings,
    artifacts,
    eventually,
    history,
    publish,
    training_rows,
)
from worker.data.interactions import Interactions, from_rows
from worker.training.fit import train

KEY = "sdk-secret-0123456789"
REGION = "eu-west-1"


def arn(kind: str, name: str) -> str:
    return f"arn:aws:personalize:{REGION}:123456789012:{kind}/{name}"


def client(service: str, api: Server, secret: str = "unused") -> Any:  # noqa: S107
    """A boto3 client of `service` pointed at the API; retries off, so each call is one
    request and a refusal surfaces at once."""
    return boto3.client(
        service,
        endpoint_url=api.base,
        region_name=REGION,
        aws_access_key_id="streamrec-test",
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def ingest(settings: ConnectorSettings) -> None:
    """What the connector does with the records the API published: every record of the
    group's item, user and event topics through the real processors."""
    group = processors(settings)
    for topic, processor in (
        (settings.topics.items, group.items),
        (settings.topics.users, group.users),
        (settings.topics.events, group.events),
    ):
        records = source_records(settings, topic)
        if records:
            assert processor.process(records).dead == 0


@pytest.fixture(scope="module")
def trained_chain() -> tuple[Model, Interactions]:
    """test_api.py's tiny model (its users walk a chain i0 -> i1 -> ...), trained once."""
    data = from_rows(training_rows())
    return train(data, Hyperparameters(hidden_dimension=32, bptt=4, epochs=3), seed=7), data


@pytest.fixture
def group_ready(
    settings: ConnectorSettings, redis_db: redis.Redis, trained_chain: tuple[Model, Interactions]
) -> Iterator[str]:
    """A group with schemas, topics, a tracker, filters and a served model; its tracking id."""
    tracking_id = prepare_group(settings)
    filters = open_filters(settings)
    filters.create("by-genre", "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    filters.create("fresh-only", 'INCLUDE ItemID WHERE Items.GENRES IN ("New")')
    yield tracking_id


@pytest.fixture
def served(
    settings: ConnectorSettings, group_ready: str, trained_chain: tuple[Model, Interactions]
) -> str:
    """group_ready, with the model published; its tracking id."""
    publish(settings, artifacts(trained_chain, COLD))
    return group_ready


def test_events_items_and_users_from_the_sdk_reach_the_datasets_and_the_answers(
    settings: ConnectorSettings,
    redis_db: redis.Redis,
    group_ready: str,
    trained_chain: tuple[Model, Interactions],
) -> None:
    group = settings.dataset_group
    with Server(create_app(api_settings(settings))) as api:
        events, runtime = client("personalize-events", api), client("personalize-runtime", api)
        items = [{"itemId": "i3", "properties": json.dumps({"title": "Heat", "genres": "Crime"})}]
        items += [{"itemId": item, "properties": json.dumps({"genres": "New"})} for item in COLD]
        for start in range(0, len(items), 10):  # PutItems takes at most 10 a call
            events.put_items(datasetArn=arn("dataset", f"{group}/ITEMS"), items=items[start:][:10])
        events.put_users(
            datasetArn=arn("dataset", f"{group}/USERS"),
            users=[{"userId": "newbie", "properties": json.dumps({"age": 31, "gender": "f"})}],
        )
        ingest(settings)
        # Filters read item metadata as it stood when the served version was loaded (a
        # version's item table), so the version comes after the catalogue.
        publish(settings, artifacts(trained_chain, COLD))
        eventually(lambda: api.call("/readyz")[0] == 200)
        campaign = arn("campaign", group)
        before = runtime.get_recommendations(campaignArn=campaign, userId="newbie", numResults=5)
        sent = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
        events.put_events(
            trackingId=group_ready,
            userId="newbie",
            sessionId="s-newbie",
            eventList=[
                {
                    "eventId": "e-1",
                    "eventType": "click",
                    "itemId": "i7",
                    "sentAt": sent,
                    "impression": ["i7", "i20"],
                    "recommendationId": before["recommendationId"],
                    "metricAttribution": {"eventAttributionSource": "newsletter"},
                    "properties": json.dumps({"device": "phone"}),
                },
                {"eventId": "e-2", "eventType": "click", "itemId": "i8", "sentAt": sent},
            ],
        )
        ingest(settings)
        after = runtime.get_recommendations(campaignArn=campaign, userId="newbie", numResults=5)
        genre = runtime.get_recommendations(
            campaignArn=campaign,
            userId="newbie",
            numResults=4,
            filterArn=arn("filter", f"{group}/by-genre"),
            filterValues={"GENRE": '"Crime"'},
            context={"DEVICE": "phone"},
        )
        promoted = runtime.get_recommendations(
            recommenderArn=arn("recommender", group),
            userId="newbie",
            numResults=10,
            promotions=[
                {
                    "name": "fresh",
                    "percentPromotedItems": 20,
                    "filterArn": arn("filter", "fresh-only"),
                }
            ],
            metadataColumns={"ITEMS": ["TITLE", "GENRES"]},
        )
        ranked = runtime.get_personalized_ranking(
            campaignArn=campaign,
            userId="newbie",
            inputList=["i3", "i9", "n0"],
            metadataColumns={"ITEMS": ["TITLE"]},
        )
    rows = decode_rows(settings, read_topic(settings, settings.topics.interactions))
    assert [(r["USER_ID"], r["ITEM_ID"], r["TIMESTAMP"]) for r in rows] == [
        ("newbie", "i7", int(sent.timestamp())),
        ("newbie", "i8", int(sent.timestamp())),
    ]
    first = rows[0]
    assert (first["IMPRESSION"], first["EVENT_ATTRIBUTION_SOURCE"]) == ("i7|i20", "newsletter")
    assert (first["RECOMMENDATION_ID"], first["DEVICE"]) == (before["recommendationId"], "phone")
    keys = Keys(group)
    assert redis_db.hget(keys.item("i3"), "TITLE") == b"Heat"
    assert redis_db.hget(keys.user("newbie"), "AGE") == b"31"
    assert [e.item for e in history(redis_db, group, Subject("u", "newbie"))] == ["i7", "i8"]
    listed = [entry["itemId"] for entry in after["itemList"]]
    assert listed != [entry["itemId"] for entry in before["itemList"]]
    assert "i9" in listed  # the chain the model learnt: i7, i8, then i9
    assert [entry["itemId"] for entry in genre["itemList"]] == ["i3"]  # the one Crime item
    fresh = [e for e in promoted["itemList"] if e.get("promotionName") == "fresh"]
    assert len(fresh) == 2 and all(e["itemId"] in COLD for e in fresh)
    assert all(e["metadata"] == {"GENRES": "New"} for e in fresh)
    assert {e["itemId"]: e.get("metadata") for e in ranked["personalizedRanking"]}["i3"] == {
        "TITLE": "Heat"
    }


@pytest.mark.parametrize(
    ("service", "call", "exception", "message"),
    [
        (
            "personalize-events",
            lambda c, g, t: c.put_events(
                trackingId="not-ours", sessionId="s", eventList=[_event()]
            ),
            "InvalidInputException",
            "trackingId",
        ),
        (
            "personalize-events",
            lambda c, g, t: c.put_events(
                trackingId=t, sessionId="s", eventList=[_event(properties='{"shoeSize": 9}')]
            ),
            "InvalidInputException",
            "SHOE_SIZE",
        ),
        (
            "personalize-events",
            lambda c, g, t: c.put_events(
                trackingId=t, sessionId="s", eventList=[_event(properties="not json")]
            ),
            "InvalidInputException",
            "not valid JSON",
        ),
        (
            "personalize-events",
            lambda c, g, t: c.put_items(
                datasetArn=arn("dataset", f"{g}/USERS"), items=[{"itemId": "x"}]
            ),
            "ResourceNotFoundException",
            "ITEMS",
        ),
        (
            "personalize-runtime",
            lambda c, g, t: c.get_recommendations(
                campaignArn=arn("campaign", g), userId="u1", filterArn=arn("filter", f"{g}/nope")
            ),
            "ResourceNotFoundException",
            "has no filter 'nope'",
        ),
        (
            "personalize-runtime",
            lambda c, g, t: c.get_recommendations(
                campaignArn=arn("campaign", g),
                userId="u1",
                filterArn=arn("filter", "other-group/by-genre"),
            ),
            "InvalidInputException",
            "other-group",
        ),
        (
            "personalize-runtime",
            lambda c, g, t: c.get_personalized_ranking(
                campaignArn=arn("campaign", "someone-else"), userId="u1", inputList=["i1"]
            ),
            "ResourceNotFoundException",
            "is not served here",
        ),
    ],
    ids=[
        "unknown-tracker",
        "property-not-in-schema",
        "properties-not-json",
        "dataset-of-another-type",
        "unknown-filter",
        "filter-of-another-group",
        "campaign-of-another-group",
    ],
)
def test_the_sdk_raises_personalizes_exceptions_and_nothing_is_published(
    settings: ConnectorSettings,
    served: str,
    service: str,
    call: Any,
    exception: str,
    message: str,
) -> None:
    with Server(create_app(api_settings(settings))) as api:
        sdk = client(service, api)
        with pytest.raises(getattr(sdk.exceptions, exception)) as raised:
            call(sdk, settings.dataset_group, served)
    assert message in raised.value.response["Error"]["Message"]
    assert not read_topic(settings, settings.topics.events)
    assert not read_topic(settings, settings.topics.items)


def _event(**extra: Any) -> dict[str, Any]:
    return {"eventType": "click", "itemId": "i1", "sentAt": datetime.now(UTC), **extra}


def test_with_keys_a_signature_needs_a_right_and_current_secret(
    settings: ConnectorSettings, served: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(api_settings(settings, api_keys=f"other-key-000000,{KEY}"))
    with Server(app) as api:
        good = client("personalize-events", api, secret=KEY)
        good.put_events(trackingId=served, sessionId="s1", eventList=[_event()])
        wrong = client("personalize-events", api, secret="not-the-key")  # noqa: S106
        with pytest.raises(ClientError) as refused:
            wrong.put_events(trackingId=served, sessionId="s1", eventList=[_event()])
        late = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10)
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: late)
        with pytest.raises(ClientError) as stale:
            good.put_events(trackingId=served, sessionId="s1", eventList=[_event()])
    for error in (refused.value, stale.value):
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert error.response["Error"]["Code"] == "InvalidSignatureException"
    assert "does not match" in refused.value.response["Error"]["Message"]
    assert "stale" in stale.value.response["Error"]["Message"]
    assert len(read_topic(settings, settings.topics.events)) == 1  # only the signed one

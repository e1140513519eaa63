"""Restore equals ingest, as a property: random mixes of every path that writes state, then
every key of the group deleted and `rebuild` run: the state is the same, key by key.

Each mix is seeded (the seed is printed when a mix fails): live events with and without a
sessionId of their own, anonymous sessions that later log in, `streamrec import`'s shape
(sessionId equal to userId), events with eventIds, impressions and recommendationIds of
served lists, items and users, and records sent twice, in batches of random sizes through the
connector's processors. STREAMREC_TEST_REBUILD_MIXES sets how many (50 by default)."""

from __future__ import annotations

import json
import os
import random
from typing import Any

import pytest
import redis

from connector.keys import Keys
from connector.records import ServedList, SourceRecord
from connector.settings import ConnectorSettings
from connector.stores.served import RedisServedLists
from connector.wiring import processors
from tests.integration.faults_helpers import redis_state
from tests.integration.helpers import prepare_group, put_events
from worker.data.rebuild import Rebuilder

MIXES = int(os.environ.get("STREAMREC_TEST_REBUILD_MIXES", "50"))
SKIP = (":recs", ":active", ":model:", ":served:")  # lists and models are not ingest's
T0 = 1_700_000_000
Record = tuple[str, bytes]  # (which processor, value)


class Mix:
    """One random stream of records, built from `seed`."""

    def __init__(self, seed: int, tracking_id: str, served: list[str]) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a test stream, not a secret
        self.tracking_id, self.served = tracking_id, served
        self.records: list[Record] = []
        self.clock = T0
        self.anonymous: list[str] = []

    def build(self, count: int) -> list[Record]:
        makers = [self.known, self.anonymous_then_login, self.imported, self.resend, self.metadata]
        while len(self.records) < count:
            self.rng.choice(makers)()
        return self.records

    def events(self, many: int = 3) -> list[dict[str, Any]]:
        found = []
        for _ in range(self.rng.randint(1, many)):
            self.clock += self.rng.randint(0, 400)
            event: dict[str, Any] = {
                "eventType": self.rng.choice(["click", "watch", "purchase"]),
                "itemId": f"i{self.rng.randrange(30)}",
                "sentAt": self.clock,
            }
            if self.rng.random() < 0.3:
                event["eventId"] = f"e{self.rng.randrange(40)}"  # some repeat: duplicates
            if self.rng.random() < 0.2:
                event["impression"] = [f"i{self.rng.randrange(30)}" for _ in range(3)]
            if self.rng.random() < 0.2:
                event["recommendationId"] = self.rng.choice(self.served)
            if self.rng.random() < 0.3:
                event["eventValue"] = round(self.rng.uniform(0, 5), 2)
            found.append(event)
        return found

    def known(self) -> None:
        user = f"u{self.rng.randrange(6)}"
        session = f"s-{user}-{self.rng.randrange(2)}"
        self.records.append(("events", put_events(self.tracking_id, session, self.events(), user)))

    def anonymous_then_login(self) -> None:
        if self.anonymous and self.rng.random() < 0.5:
            session = self.anonymous.pop(self.rng.randrange(len(self.anonymous)))
            user = f"u{self.rng.randrange(6)}"
            value = put_events(self.tracking_id, session, self.events(), user)
        else:
            session = f"anon{self.rng.randrange(1000)}"
            self.anonymous.append(session)
            value = put_events(self.tracking_id, session, self.events())
        self.records.append(("events", value))

    def imported(self) -> None:
        user = f"u{self.rng.randrange(6)}"  # streamrec import: sessionId = userId
        self.records.append(("events", put_events(self.tracking_id, user, self.events(1), user)))

    def resend(self) -> None:
        if self.records:
            self.records.append(self.rng.choice(self.records))

    def metadata(self) -> None:
        if self.rng.random() < 0.5:
            entry = {"itemId": f"i{self.rng.randrange(30)}", "properties": {"genres": "A|B"}}
            self.records.append(("items", json.dumps({"items": [entry]}).encode()))
        else:
            entry = {"userId": f"u{self.rng.randrange(6)}", "properties": {"age": "31"}}
            self.records.append(("users", json.dumps({"users": [entry]}).encode()))


def ingest(settings: ConnectorSettings, records: list[Record], rng: random.Random) -> None:
    """The records through the connector's processors, in batches of random sizes (each
    kind's records in their order)."""
    handlers = processors(settings.model_copy(update={"lists_enabled": False}))
    topics = {"events": settings.topics.events, "items": settings.topics.items}
    topics["users"] = settings.topics.users
    offset, start = 0, 0
    while start < len(records):
        size = rng.randint(1, 8)
        chunk = records[start : start + size]
        start += size
        for kind in ("events", "items", "users"):
            batch = []
            for which, value in chunk:
                if which == kind:
                    batch.append(SourceRecord(topics[kind], 0, offset, b"k", value))
                    offset += 1
            if batch:
                getattr(handlers, kind).process(batch)


def delete_group_keys(client: redis.Redis, group: str) -> None:
    found = list(client.scan_iter(match=f"streamrec:{group}:*"))
    if found:
        client.delete(*found)


@pytest.mark.parametrize("seed", range(MIXES))
def test_state_after_rebuild_equals_state_after_ingest(
    settings: ConnectorSettings, redis_db: redis.Redis, seed: int
) -> None:
    tracking_id = prepare_group(settings)
    served = RedisServedLists(redis_db, Keys(settings.dataset_group))
    ids = [f"rec{n}" for n in range(3)]
    for n, recommendation in enumerate(ids):
        source = "streamrec-api" if n else "campaign-a"
        served.put(recommendation, ServedList([f"i{k}" for k in range(n, n + 4)], source), 3600)
    mix = Mix(seed, tracking_id, ids)
    ingest(settings, mix.build(mix.rng.randint(10, 40)), mix.rng)
    ingested = redis_state(redis_db, settings.dataset_group, SKIP)
    assert any(":{u:" in key and key.endswith(":history") for key in ingested), f"seed {seed}"
    delete_group_keys(redis_db, settings.dataset_group)
    Rebuilder(settings).run()
    rebuilt = redis_state(redis_db, settings.dataset_group, SKIP)
    differing = sorted(k for k in set(ingested) | set(rebuilt) if ingested.get(k) != rebuilt.get(k))
    assert not differing, f"seed {seed}: {differing[:5]}"
    assert not any(k.endswith(":history") and ":{s:u" in k for k in rebuilt)  # imports: users

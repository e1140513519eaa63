"""What the API answers by default is what the model answers in-process (issue 16).

A small dataset goes the way a new user sends it (bench/product_path.py, which
bench/quality.py measures through): `streamrec init`, a `streamrec connector` process,
`streamrec import items` and `interactions` of CSV files, `streamrec train --mode full`,
then a `streamrec api` process with default settings. For every user, its
`POST /recommendations {"userId", "numResults": 10}` answer must be the list
connector.serving.recommend.recommend_many gives in-process for the same model version
(loaded from Redis) and the user's imported history, at the API's default exploration
settings: the same items in the same order, with the same scores.

Exploration draws at random, so the answers are comparable only where no item is new. The
catalogues give evidence of that two ways: every item has a CREATION_TIMESTAMP a year old;
or none has one, some items have no interaction at all, and every interacted item was first
seen more than explorationItemAgeCutOff (30 days) before the newest interaction. An item
with neither a creation time nor an interaction has no evidence of being new (issue 16,
cause 1), so it must not be explored either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import redis

from bench.product_path import Answer, Product, recommendations
from connector.api.settings import ApiSettings
from connector.keys import Keys, Subject
from connector.model.history import HistoryEntry, parse_member
from connector.serving.current_model import INDEX_MIN_ITEMS, ServingModel
from connector.serving.ranking import Exploration
from connector.serving.recommend import recommend_many
from connector.settings import ConnectorSettings
from connector.stores.model_versions import ModelStore

T0 = 1_600_000_000
DAY = 86_400
ITEMS = [f"i{n}" for n in range(60)]  # interacted with
NEVER = [f"n{n}" for n in range(6)]  # in the catalogue, never interacted with
EVENTS_PER_USER = 10  # every user alike, so the history-length percentile drops nobody
CHAIN_USERS = 100  # with the early users, above the 1,000 events FULL needs
COUNT = 10


def interaction_rows() -> list[dict[str, Any]]:
    """Six early users click every item on day 0 (so each is first seen then); 60 days
    later CHAIN_USERS users each walk 10 steps along a chain of the items (i0 -> i1 ...)."""
    rows = []
    for early in range(len(ITEMS) // EVENTS_PER_USER):
        for step in range(EVENTS_PER_USER):
            item = ITEMS[early * EVENTS_PER_USER + step]
            rows.append(_row(f"e{early}", item, T0 + early * 100 + step))
    for user in range(CHAIN_USERS):
        for step in range(EVENTS_PER_USER):
            item = ITEMS[(3 * user + step) % len(ITEMS)]
            rows.append(_row(f"u{user}", item, T0 + 60 * DAY + user * 100 + step))
    return rows


def _row(user: str, item: str, timestamp: int) -> dict[str, Any]:
    return {"USER_ID": user, "ITEM_ID": item, "TIMESTAMP": timestamp, "EVENT_TYPE": "click"}


def item_rows(dated: bool) -> tuple[list[str], list[dict[str, Any]]]:
    """(CSV fields, rows) of the Items dataset: every item, with a creation time a year
    before the first interaction when `dated`, else with none."""
    fields = ["ITEM_ID", "CREATION_TIMESTAMP", "TITLE"] if dated else ["ITEM_ID", "TITLE"]
    created = T0 - 365 * DAY if dated else None
    rows = [
        {"ITEM_ID": item, "CREATION_TIMESTAMP": created, "TITLE": f"Title of {item}"}
        for item in ITEMS + NEVER
    ]
    return fields, rows


def imported_histories(rows: list[dict[str, Any]]) -> dict[str, list[HistoryEntry]]:
    histories: dict[str, list[HistoryEntry]] = {}
    for row in rows:
        entry = HistoryEntry(row["ITEM_ID"], row["EVENT_TYPE"], row["TIMESTAMP"])
        histories.setdefault(row["USER_ID"], []).append(entry)
    return histories


def in_process(
    served: ServingModel, histories: dict[str, list[HistoryEntry]]
) -> dict[str, tuple[list[str], list[float]]]:
    """recommend_many's answer per user, at the API's default exploration settings."""
    defaults = ApiSettings.model_fields
    exploration = Exploration(
        defaults["exploration_weight"].default, defaults["exploration_item_age_cut_off"].default
    )
    users = sorted(histories)
    ranked = recommend_many(
        served, [histories[u] for u in users], COUNT, exploration, np.random.default_rng(0)
    )
    return {
        user: ([served.model.items[int(c)] for c in listed.columns], listed.scores.tolist())
        for user, listed in zip(users, ranked, strict=True)
    }


def mismatches(
    api: dict[str, Answer], expected: dict[str, tuple[list[str], list[float]]]
) -> list[str]:
    found = []
    for user, (items, scores) in sorted(expected.items()):
        answer = api[user]
        # an answer from the precomputed list carries its scores rounded to 6 decimals
        same_scores = np.allclose(answer.scores, scores, rtol=1e-5, atol=6e-7)
        if answer.items != items or not same_scores:
            explored = [n for n, flag in enumerate(answer.explored) if flag]
            rest = [n for n in range(len(items)) if n not in explored]
            only = all(n < len(answer.items) and answer.items[n] == items[n] for n in rest) and len(
                answer.items
            ) == len(items)
            found.append(
                f"{user}: API {answer.items} (explored at positions {explored}"
                f"{'; the other positions agree' if only else ''}) != in-process {items}"
            )
    return found


@pytest.mark.parametrize("dated", [True, False], ids=["creation-times", "no-creation-times"])
def test_default_api_answer_equals_the_in_process_answer(
    settings: ConnectorSettings,
    service_env: dict[str, str],
    redis_db: redis.Redis,
    tmp_path: Path,
    dated: bool,
) -> None:
    product = Product(settings, service_env, tmp_path)
    product.init()
    rows = interaction_rows()
    with product.connector() as connector:
        fields, items = item_rows(dated)
        assert product.import_rows("items", fields, items).accepted == len(items)
        fields = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"]
        assert product.import_rows("interactions", fields, rows).accepted == len(rows)
        product.wait_caught_up(connector, len(rows), timeout=180)
        version, _ = product.train()

        keys = Keys(settings.dataset_group)
        histories = imported_histories(rows)
        for user, history in histories.items():  # the API reads what was imported
            members = cast(list[bytes], redis_db.zrange(keys.history(Subject("u", user)), 0, -1))
            stored = [parse_member(member) for member in members]
            assert [(e.item, e.timestamp) for e in stored] == [
                (e.item, e.timestamp) for e in history
            ]
        artifacts = ModelStore(redis_db, keys).load(version)
        served = ServingModel.from_artifacts(version, artifacts, INDEX_MIN_ITEMS)
        assert set(NEVER) <= set(served.model.items)  # in the catalogue the API serves
        expected = in_process(served, histories)

        with product.api("api", version) as port:
            answers = recommendations(port, sorted(histories), COUNT)

    assert all(len(answer.items) == COUNT for answer in answers.values())
    different = mismatches(answers, expected)
    assert not different, f"{len(different)} of {len(expected)} users differ:\n" + "\n".join(
        different[:5]
    )

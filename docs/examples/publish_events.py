"""Publish a few PutEvents records with streamrec's producer helper.

    TRACKING_ID=$(streamrec trackers create) python docs/examples/publish_events.py

Uses the same STREAMREC_* settings as every streamrec command.
"""

from __future__ import annotations

import os
import sys
import time

from connector.producer import EventProducer
from connector.settings import CommonSettings


def main() -> None:
    tracking_id = os.environ.get("TRACKING_ID") or sys.exit("set TRACKING_ID first")
    producer = EventProducer(CommonSettings(), encoding="json")
    now = int(time.time())
    # An anonymous visitor browses, then logs in as u1: the session's history moves to u1.
    producer.put_events(
        tracking_id,
        "s1",
        [
            {"eventType": "click", "itemId": "i1", "sentAt": now},
            {"eventType": "click", "itemId": "i2", "sentAt": now + 1},
        ],
    )
    producer.put_events(
        tracking_id,
        "s1",
        [
            {
                "eventType": "watch",
                "itemId": "i3",
                "sentAt": now + 2,
                "eventValue": 4.0,
                "impression": ["i3", "i4", "i5"],
                "properties": {"device": "tv"},
            },
        ],
        user_id="u1",
    )
    producer.flush()
    print(
        "published 2 records (3 events); see: redis-cli ZRANGE 'streamrec:"
        f"{CommonSettings().dataset_group}:{{u:u1}}:history' 0 -1"
    )


if __name__ == "__main__":
    main()

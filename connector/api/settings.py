"""Settings of the `streamrec api` process: where it listens, what it accepts, how it ranks.

Limits default to Personalize's (numResults 25 by default, at most 500; inputList at most
500 ids) so clients written against Personalize behave the same here. Exploration is set per
deployment, as Personalize sets it per campaign, not per request.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from connector.settings import CommonSettings


class ApiSettings(CommonSettings):
    """Settings of the HTTP API (`streamrec api`): GetRecommendations, GetPersonalizedRanking."""

    api_host: str = Field(
        "0.0.0.0",  # noqa: S104 - a container's port is reached from outside it
        description="Address the API listens on.",
    )
    api_port: int = Field(8080, ge=0, le=65535, description="Port the API listens on.")
    api_max_body_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Largest request body accepted; larger ones get 413. The default takes "
        "the largest PutItems Personalize accepts: 10 items of 32,000 characters, which the "
        "SDKs send as JSON inside JSON, up to 6 bytes a character (\\uXXXX escapes).",
    )
    api_intake_requests_per_second: float = Field(
        2000.0,
        ge=0,
        description="Most PutEvents, PutItems and PutUsers requests a second this process "
        "takes (bursts of up to a second's worth); more get 429, which the AWS SDKs retry "
        "with backoff. 0: no limit.",
    )
    api_request_timeout_seconds: float = Field(
        5.0, gt=0, description="Longest a request may take before it gets 503."
    )
    api_default_num_results: int = Field(
        25, ge=1, description="numResults of a GetRecommendations request that gives none."
    )
    api_max_num_results: int = Field(
        500, ge=1, description="Largest numResults accepted; larger ones get 400."
    )
    api_max_input_list: int = Field(
        500, ge=1, description="Most item ids accepted in a GetPersonalizedRanking inputList."
    )
    api_threads: int = Field(
        0,
        ge=0,
        description="Threads that answer requests. 0 answers them one at a time on the event "
        "loop, which was the fastest and steadiest against a Redis on the same host "
        "(docs/performance-log.md, Serving); with a pool, threads contend for the interpreter "
        "lock and filtered requests at 500/s swung between keeping up and falling behind. Give "
        "a few when Redis is across a network, so that their round trips overlap.",
    )
    api_served_ttl_seconds: int = Field(
        7 * 24 * 3600,
        ge=1,
        description="How long a served list stays readable under its recommendationId, so "
        "later events naming it get its items as their implicit impression.",
    )
    api_served_per_subject: int = Field(
        20,
        ge=1,
        description="Most lists kept per user or session under their recommendationIds (the "
        "newest; older ones are deleted), so requests cannot grow Redis without bound "
        "(docs/redis-keys.md).",
    )
    api_attribution_source: str = Field(
        "streamrec-api",
        description="Attribution source of events that name a recommendationId served here "
        "and give no eventAttributionSource of their own.",
    )
    api_model_poll_seconds: float = Field(
        30.0,
        gt=0,
        description="How often the current model version is checked besides "
        "its announcements (which pub/sub may drop while a connection is down).",
    )
    api_keys: SecretStr | None = Field(
        None,
        description="API keys, comma-separated (never logged): when set (or a keys file is), "
        "every request but /healthz and /readyz needs `Authorization: Bearer <key>` or "
        "`x-api-key: <key>`, else 401. Unset: no key is required.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="File of API keys, one per line (e.g. a mounted Kubernetes Secret), read "
        "at start-up; used with STREAMREC_API_KEYS.",
    )
    api_metrics_public: bool = Field(
        False,
        description="Serve /metrics without an API key even when keys are required, for "
        "scrapers that cannot send one.",
    )
    exploration_weight: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Most share of each list given to new items with little interaction "
        "data, and how far below the user's top they may score (Personalize's "
        "explorationWeight): docs/model.md.",
    )
    exploration_item_age_cut_off: float = Field(
        30.0,
        gt=0,
        description="Days before the newest interaction an item may be created and still be "
        "explored (Personalize's explorationItemAgeCutOff).",
    )

    @model_validator(mode="after")
    def _check_default(self) -> ApiSettings:
        if self.api_default_num_results > self.api_max_num_results:
            raise ValueError("api_default_num_results must not exceed api_max_num_results")
        return self

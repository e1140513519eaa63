"""`streamrec api`: serve GetRecommendations and GetPersonalizedRanking over HTTP."""

from __future__ import annotations

import logging
from typing import Any

import click
from aiohttp import web

from connector.api.app import create_app
from connector.api.settings import ApiSettings
from connector.cli.listen import Listen
from connector.cli.options import group_option
from connector.http_logs import RedactingAccessLogger


@click.command()
@group_option
@click.option("--host", help="Address to listen on (default: STREAMREC_API_HOST).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: STREAMREC_API_PORT).")
def api(group: str | None, host: str | None, port: int | None) -> None:
    """Serve recommendations over HTTP in Amazon Personalize's request and response shapes:
    POST /recommendations, POST /personalize-ranking, and /healthz, /readyz, /metrics.

    Follows the dataset group's published model versions without a restart; answers 503
    until the first one is published. Stops cleanly on SIGTERM or Ctrl-C. Exits with
    status 1 and one line on stderr when it cannot listen (the port in use, say).

    \b
    Example:
      streamrec api --port 8080
      curl -s localhost:8080/recommendations -H 'Content-Type: application/json' \
        -d '{"userId": "u1", "numResults": 5}'
    """
    overrides: dict[str, Any] = {"dataset_group": group, "api_host": host, "api_port": port}
    settings = ApiSettings(**{k: v for k, v in overrides.items() if v is not None})
    listen = Listen(
        settings.api_host,
        settings.api_port,
        port_choice="--port or STREAMREC_API_PORT",
        host_choice="--host or STREAMREC_API_HOST",
    )
    listen.check()  # at once, not after connecting to Kafka and Redis
    app = create_app(settings)
    quiet = not logging.getLogger().isEnabledFor(logging.INFO)
    try:
        web.run_app(
            app,
            host=settings.api_host,
            port=settings.api_port,
            access_log=None if quiet else logging.getLogger("streamrec.api.access"),
            access_log_class=RedactingAccessLogger,
            print=None if quiet else click.echo,
            shutdown_timeout=settings.api_request_timeout_seconds,
        )
    except OSError as exc:  # the port taken since the check above
        raise listen.failed(exc) from exc

"""`streamrec connector`: run the ingest agents of one dataset group."""

from __future__ import annotations

import logging

import click
import faust

from connector import http_logs, logs
from connector.app import create_app
from connector.cli.listen import Listen
from connector.settings import ConnectorSettings
from connector.wiring import ensure_group_topics, processors


@click.command()
@click.option("--verbose-faust", is_flag=True, help="Show faust's own info logs and banner.")
def connector(verbose_faust: bool) -> None:
    """Consume the dataset group's event topic: validate, dedup, append to the Interactions
    dataset, dead-letter what fails, and keep session histories in Redis.

    Needs a registered Interactions schema and a tracker. Scale out by starting more
    processes with the same settings: they share the topic's partitions.

    \b
    Example:
      STREAMREC_DATASET_GROUP=shop streamrec connector
    """
    settings = ConnectorSettings()
    ensure_group_topics(settings)
    app = create_app(settings, processors(settings))
    http_logs.quiet_malformed_http()  # faust's web server is aiohttp's too
    # faust would log a bind error as one JSON line holding a 40-frame traceback
    if app.conf.web_enabled:
        Listen(app.conf.web_host, app.conf.web_port, "STREAMREC_CONNECTOR_WEB_PORT").check()
    level = logging.INFO if verbose_faust else logging.WARNING
    worker = faust.Worker(
        app,
        loglevel=level,
        quiet=not verbose_faust,
        logging_config=logs.dict_config(level),  # JSON lines, as every other command logs
    )
    worker.execute_from_commandline()

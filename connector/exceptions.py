"""Every error streamrec raises, in one tree, so callers can catch by meaning.

Specific errors also subclass the matching built-in (ValueError, LookupError, RuntimeError)
so that generic code that knows nothing of streamrec still handles them sensibly.
"""


class StreamrecError(Exception):
    """Base of every error raised on purpose by streamrec."""


class ConfigurationError(StreamrecError, ValueError):
    """A setting is missing or inconsistent; the message says which and how to fix it."""


class SchemaRuleError(StreamrecError, ValueError):
    """A dataset schema breaks one of Personalize's schema rules."""


class IncompatibleSchemaError(SchemaRuleError):
    """A new schema version cannot read what the previous version accepted."""


class SchemaNotFoundError(StreamrecError, LookupError):
    """No schema is registered under the requested group, dataset, version or id."""


class ConcurrentWriteError(StreamrecError, RuntimeError):
    """Another process wrote the same compacted log at the same time; retry."""


class TrackerError(StreamrecError, ValueError):
    """A tracker cannot be created or deleted as asked; the message says why."""


class InvalidEventError(StreamrecError, ValueError):
    """An event or dataset record does not match its registered schema."""


class MappingError(StreamrecError, ValueError):
    """A source's mapping is malformed, or cannot map a record: the message names the field
    and the step."""


class SourceError(StreamrecError, ValueError):
    """A source cannot be created, changed or found: the message says why."""


class TransientError(StreamrecError, ConnectionError):
    """A fault that passes on its own: retry later (connector/retry.py has the policy)."""


class KafkaUnavailableError(TransientError):
    """The Kafka broker did not answer in time."""


class SchemaRegistryUnavailableError(TransientError):
    """The Schema Registry at STREAMREC_SCHEMA_REGISTRY_URL did not answer, or failed."""


class RedisUnavailableError(TransientError):
    """Redis refused the connection or the credentials; the message says which."""


class ListRefreshUnavailableError(TransientError):
    """The connector's list refresh process died or did not answer in time (the batch is
    retried, with a new process)."""


class DevServiceError(StreamrecError, RuntimeError):
    """A local development service (Kafka, Redis) could not be set up, started or stopped."""


class MissingToolError(DevServiceError):
    """A program local services need is not installed; the message says what to install."""


class ModelNotFoundError(StreamrecError, LookupError):
    """No model version (or not the one asked for) is published."""


class FilterError(StreamrecError, ValueError):
    """A recommendation filter cannot be created, found or applied as asked; says why."""


class FilterExpressionError(FilterError):
    """A filter expression is malformed; carries the 1-based character position and reason."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"position {position}: {reason}")
        self.position = position
        self.reason = reason


class FilterValueError(FilterError):
    """The filterValues of a request do not fill the filter's parameters as required."""


class FilterNotFoundError(StreamrecError, LookupError):
    """No filter of that name exists in the dataset group."""

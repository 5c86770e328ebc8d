"""Errors raised by the Kafka wiring."""

from schemas.errors import FeedlineError


class StreamsError(FeedlineError):
    """Base class for errors in ``streams``."""


class LocalBrokerError(StreamsError):
    """The local development broker could not be fetched, formatted, started or stopped."""


class TopicError(StreamsError):
    """A topic could not be created, or exists with an incompatible configuration."""


class ProduceError(StreamsError):
    """An event could not be delivered to Kafka."""


class InvalidProduceInput(StreamsError):
    """A record handed to the producer client is malformed (not JSON, unknown topic, no key)."""

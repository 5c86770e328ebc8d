"""feedline: a nearline LLM-embedding feed index kept fresh from Kafka events."""

from feedline.errors import FeedlineError

__version__ = "0.1.0"
__all__ = ["FeedlineError", "__version__"]

"""Logging set-up and the one-time "effective config" log line of every role."""

from __future__ import annotations

import json
import logging
import os

from pydantic_settings import BaseSettings

QUIET_LOGGERS = ("aiokafka", "faust", "mode", "httpx", "transformers", "urllib3", "faiss")


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr as ``time level logger: message``; third-party chatter at WARNING."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # model weights never download at run time
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def log_effective_config(role: str, *settings: BaseSettings) -> None:
    """Log every setting of a role once at start; ``SecretStr`` values show as ``**********``."""
    merged = {type(s).__name__: json.loads(s.model_dump_json()) for s in settings}
    logging.getLogger("feedline").info("%s effective config: %s", role, json.dumps(merged))

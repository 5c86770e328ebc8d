"""Reading producer events from JSON Lines files (``feedline produce FILE.jsonl``).

Each line is either an envelope ``{"topic": "posts.created", "value": {...event...}}`` or,
when a default topic is given, a bare event. Every line is validated before anything is
produced, so a bad file is rejected whole, with each bad line's number and reason.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from schemas import (
    Engagement,
    InvalidRecord,
    MemberProfile,
    PostCreated,
    PostDeleted,
    decode,
)
from streams.errors import InvalidProduceInput
from streams.producer import EventProducer, ProducerEvent
from streams.topics import ENGAGEMENTS, MEMBERS_PROFILE, POSTS_CREATED, POSTS_DELETED

MODELS_BY_TOPIC: dict[str, type[BaseModel]] = {
    POSTS_CREATED.name: PostCreated,
    POSTS_DELETED.name: PostDeleted,
    ENGAGEMENTS.name: Engagement,
    MEMBERS_PROFILE.name: MemberProfile,
}
MAX_ERRORS_SHOWN = 10


def parse_line(line: str, default_topic: str | None = None) -> ProducerEvent:
    """One event from one line; raises ``InvalidProduceInput`` saying what is wrong."""
    try:
        document = json.loads(line)
    except json.JSONDecodeError as error:
        raise InvalidProduceInput(f"not JSON: {error}") from None
    except RecursionError:
        raise InvalidProduceInput("JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise InvalidProduceInput("expected a JSON object")
    topic, value = (
        (document.get("topic"), document.get("value"))
        if "value" in document
        else (default_topic, document)
    )
    model = MODELS_BY_TOPIC.get(str(topic))
    if model is None:
        known = ", ".join(MODELS_BY_TOPIC)
        raise InvalidProduceInput(f"unknown or missing topic {topic!r}; expected one of {known}")
    try:
        event = decode(model, json.dumps(value).encode())
    except InvalidRecord as error:
        raise InvalidProduceInput(str(error)) from None
    return event  # type: ignore[return-value]


def read_events(path: Path, default_topic: str | None = None) -> Iterator[ProducerEvent]:
    """Parse every non-blank line; raises one error listing all bad lines (first 10)."""
    errors: list[str] = []
    events: list[ProducerEvent] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                events.append(parse_line(line, default_topic))
            except InvalidProduceInput as error:
                errors.append(f"{path}:{number}: {error}")
    if errors:
        shown = "\n".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > 10 else ""
        raise InvalidProduceInput(
            f"{len(errors)} invalid lines; nothing was produced:\n{shown}{more}"
        )
    return iter(events)


def produce_file(
    path: Path, producer: EventProducer, default_topic: str | None = None
) -> Counter[str]:
    """Validate and publish every event of a JSONL file; returns counts per topic."""
    counts: Counter[str] = Counter()
    for event in read_events(path, default_topic):
        producer.publish(event)
        counts[type(event).__name__] += 1
    producer.flush()
    return counts

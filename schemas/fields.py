"""Field types shared by every schema: identifiers, times, bounded strings."""

from typing import Annotated

from pydantic import Field, StringConstraints

#: Entity ids travel as Kafka keys and in URLs: 1..128 URL-safe characters.
EntityId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@~-]+$")
]

#: Epoch milliseconds between 1970 and 2100 (a value in seconds would still pass; use ms).
EpochMs = Annotated[int, Field(ge=0, lt=4_102_444_800_000)]

#: A short label such as an industry, company or language code.
Label = Annotated[str, StringConstraints(max_length=256)]

#: Free text. Not length-limited here: the prompt budget truncates long text downstream.
Text = str

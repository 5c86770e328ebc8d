"""Field types shared by every schema: identifiers, times, bounded strings.

Every string type refuses lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but not valid
Unicode): such a record could be decoded but never re-encoded, tokenised or served, so it
would stop whichever stage touched it next.
"""

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"holds a lone UTF-16 surrogate at index {error.start}") from None
    return value


#: Entity ids travel as Kafka keys and in URLs: 1..128 URL-safe characters.
EntityId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@~-]+$")
]

#: Epoch milliseconds between 1970 and 2100 (a value in seconds would still pass; use ms).
EpochMs = Annotated[int, Field(ge=0, lt=4_102_444_800_000)]

#: A short label such as an industry, company, language code or version string.
Label = Annotated[str, StringConstraints(max_length=256), AfterValidator(_valid_unicode)]

#: Free text. Not length-limited here: the prompt budget truncates long text downstream.
Text = Annotated[str, AfterValidator(_valid_unicode)]

"""The single source of truth for every record on the wire: models, versions, JSON Schema."""

from schemas.codec import decode, describe_validation_error, encode
from schemas.errors import InvalidReason, InvalidRecord, SchemaError
from schemas.events import (
    SCHEMA_VERSION,
    Action,
    Education,
    Engagement,
    MemberProfile,
    Position,
    PostCreated,
    PostDeleted,
    PostFormat,
)
from schemas.export import WIRE_MODELS, export_json_schemas, json_schema
from schemas.pipeline import (
    AttrValue,
    EmbeddingUpdate,
    Entity,
    MemberEngagement,
    Operation,
    PromptRequest,
)

__all__ = [
    "SCHEMA_VERSION",
    "WIRE_MODELS",
    "Action",
    "AttrValue",
    "Education",
    "EmbeddingUpdate",
    "Engagement",
    "Entity",
    "InvalidReason",
    "InvalidRecord",
    "MemberEngagement",
    "MemberProfile",
    "Operation",
    "Position",
    "PostCreated",
    "PostDeleted",
    "PostFormat",
    "PromptRequest",
    "SchemaError",
    "decode",
    "describe_validation_error",
    "encode",
    "export_json_schemas",
    "json_schema",
]

"""Kubernetes-style object conventions shared by every kind: metadata, conditions, base classes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from controller.api.fields import LabelKey, LabelValue, Name

GROUP = "ha.vigil.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"


def parse_timestamp(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"invalid timestamp {value!r}: expected RFC 3339, e.g. 2026-11-22T06:09:47Z"
            ) from None
    else:
        raise ValueError(f"expected an RFC 3339 timestamp, got {type(value).__name__}")
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone: add Z for UTC")
    return moment.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat(timespec="microseconds")
    if text.endswith(".000000+00:00"):
        return text[: -len(".000000+00:00")] + "Z"
    return text.replace("+00:00", "Z")


def _resource_version(value: object) -> str:
    # Users copy resourceVersion from `ha get -o yaml`, where YAML may read it as an int.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("resourceVersion must be a string of digits, as `ha get -o yaml` shows")
    text = str(value)
    if not text.isdigit():
        raise ValueError(f"invalid resourceVersion {value!r}: expected digits")
    return text


Timestamp = Annotated[
    datetime,
    PlainValidator(parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
ResourceVersion = Annotated[
    str, PlainValidator(_resource_version), WithJsonSchema({"type": "string"})
]


def one_of(*names: str) -> ConfigDict:
    """Model config whose JSON schema (CRDs, explain) says exactly one of names is set."""
    return ConfigDict(json_schema_extra={"oneOf": [{"required": [n]} for n in names]})


class ApiModel(BaseModel):
    """Strict base: unknown fields and type coercions are errors, camelCase in YAML."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        alias_generator=to_camel,
        validate_assignment=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form: camelCase keys, human units, no unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ObjectMeta(ApiModel):
    name: Name = Field(description="Name of the object, unique within its kind in the cluster.")
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        description="Key/value pairs to select objects with `ha get -l key=value`.",
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Free-form key/value notes for tools and people; not used for selection.",
    )
    uid: str | None = Field(
        default=None,
        description="Set by Vigil when the object is created; tells a re-created object apart.",
    )
    generation: int | None = Field(
        default=None,
        description="Set by Vigil: increments each time the spec changes (not labels or status).",
    )
    resource_version: ResourceVersion | None = Field(
        default=None,
        description=(
            "Set by Vigil: the store revision of the last change. When given in an applied "
            "file, the apply fails with a conflict if the object changed since."
        ),
    )
    creation_timestamp: Timestamp | None = Field(
        default=None, description="Set by Vigil: when the object was created (UTC)."
    )


class Condition(ApiModel):
    type: str = Field(description="What the condition is about, e.g. Ready, Available, Fenced.")
    status: Literal["True", "False", "Unknown"] = Field(
        description="Whether the condition holds: True, False or Unknown."
    )
    reason: str = Field(
        default="", description="One CamelCase word a program can match, e.g. ProbeFailed."
    )
    message: str = Field(default="", description="A sentence for people: what, where, what to do.")
    last_transition_time: Timestamp | None = Field(
        default=None, description="When status last changed."
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation this condition was computed from."
    )


class Status(ApiModel):
    observed_generation: int | None = Field(
        default=None, description="The spec generation the reporter last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="The latest observations of the object's state."
    )


class Object(ApiModel):
    """A stored object; subclasses fix ``kind``, ``spec`` and ``status``."""

    KIND: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]] = ()
    ALIASES: ClassVar[tuple[str, ...]] = ()

    api_version: Literal["ha.vigil.dev/v1alpha1"] = Field(
        description="Version of the API the document is written against: ha.vigil.dev/v1alpha1."
    )
    metadata: ObjectMeta = Field(description="Name, labels and bookkeeping of the object.")

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        # Conventional key order, so that YAML output reads like kubectl's.
        order = ("apiVersion", "kind", "metadata", "spec", "status")
        return {key: data[key] for key in order if key in data}

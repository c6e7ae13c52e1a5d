"""Shapes shared by every resource."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ObjectIdRef(BaseModel):
    """MongoDB's extended JSON for an id, as Oakestra's clients read it: `{"$oid": "<24 hex>"}`."""

    model_config = ConfigDict(populate_by_name=True)

    oid: str = Field(alias="$oid", pattern=r"^[0-9a-f]{24}$", examples=["65f0c2a7e4b0a1b2c3d4e5f6"])

    @model_validator(mode="before")
    @classmethod
    def _from_plain_id(cls, data: Any) -> Any:
        # Records keep plain string ids; the wire wants them wrapped.
        return {"$oid": data} if isinstance(data, str) else data


class Message(BaseModel):
    message: str


class FieldErrorOut(BaseModel):
    field: str = Field(description="path of the offending field, e.g. applications[0].microservices[1].port")
    reason: str


class ErrorBody(BaseModel):
    """Every error answer: a message, and for bad input every problem with its field."""

    message: str
    errors: list[FieldErrorOut] | None = None


class Strict(BaseModel):
    """Request bodies: unknown fields are ignored (Oakestra's clients send extras), types are checked."""

    model_config = ConfigDict(extra="ignore")

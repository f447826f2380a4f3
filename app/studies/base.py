"""The pieces every part of a study file is made of: strict models, slugs, the base of a step.

Here rather than in schema.py because the step types (app/steps/) declare their own parameter
models on these, and schema.py builds the study from the step types.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def slug(v: str) -> str:
    if not SLUG.match(v):
        raise ValueError("use lower-case letters, digits, '-' and '_' (at most 64), starting with a letter or digit")
    return v


class StepSpec(Strict):
    """What every step of a study file has: its type (the step type's name) and a unique id."""

    type: str
    id: str

    _id = field_validator("id")(slug)

"""Request bodies (pydantic, ``extra="forbid"``: unknown keys are refused with their name) and JSON encoding of the
responses (numpy and pandas values → plain JSON; NaN → null; times ISO 8601 UTC)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from twin.api.auth import Role

__all__ = ["AckRequest", "DecisionRequest", "PlanRequest", "TokenRequest", "jsonable", "records"]

Duration = Annotated[
    str,
    Field(
        pattern=r"^\s*[0-9]{1,4}\s*(min|h|d)\s*$",
        description="a duration: a number and min, h or d ('24h', '90min', '2d')",
        examples=["24h"],
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AckRequest(_Strict):
    """Acknowledge an alarm."""

    comment: str | None = Field(default=None, max_length=1000)


class DecisionRequest(_Strict):
    """Approve or reject a plan (the comment goes to its history)."""

    comment: str | None = Field(default=None, max_length=1000)


class PlanRequest(_Strict):
    """Request a shedding plan for the stored forecasts."""

    assets: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None, max_length=1000, description="branch ids to protect (default: every line and transformer)"
    )
    horizon: Duration = "24h"
    margin: float = Field(default=0.05, ge=0.0, le=0.5, description="share of each rating kept free")
    load_quantile: float = Field(default=0.5, gt=0.0, lt=1.0, description="forecast quantile of loads")
    gen_quantile: float = Field(default=0.5, gt=0.0, lt=1.0, description="forecast quantile of generators")


class TokenRequest(_Strict):
    """Create an API token."""

    role: Role
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")


def _scalar(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | np.datetime64 | pd.Timedelta | np.timedelta64):
        return None if pd.isna(value) else value.isoformat() if hasattr(value, "isoformat") else str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if (isinstance(value, float) and not math.isfinite(value)) or value is pd.NaT or value is pd.NA:
        return None
    return value


def jsonable(value: Any) -> Any:
    """``value`` with numpy/pandas scalars, timestamps, tuples and NaN turned into JSON values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray | pd.Index):
        return [jsonable(v) for v in value]
    if isinstance(value, np.datetime64 | np.timedelta64):
        value = pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value)
    return _scalar(value)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-ready dicts (index dropped; reset it first to keep it)."""
    return [jsonable(r) for r in frame.to_dict(orient="records")]

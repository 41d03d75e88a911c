"""Modification models of a scenario spec (``kind: ev``, ``load_growth``, …); see ``docs/design/scenarios.md``.

Every model is frozen and rejects unknown keys; its own rules (exactly one of two fields, …) are checked when a
spec is read. :data:`MODIFICATION_KINDS` maps each ``kind`` to its model. Re-exported by :mod:`scenarios.spec`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from scenarios.electrify import EvSessions

__all__ = [
    "MODIFICATION_KINDS",
    "Battery",
    "Clock",
    "Ev",
    "HeatPumps",
    "Ids",
    "LoadGrowth",
    "Modification",
    "Outage",
    "Positive",
    "Pv",
    "Share",
    "Switching",
    "TrafoReplacement",
    "WeatherShift",
]


def _share(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1 (a share), got {value}")
    return value


def _positive(value: float) -> float:
    if not value > 0.0:
        raise ValueError(f"must be positive, got {value}")
    return value


Share = Annotated[float, AfterValidator(_share)]
Positive = Annotated[float, AfterValidator(_positive)]
Ids = Annotated[list[str], Field(min_length=1)]


class _Strict(BaseModel):
    """Frozen model that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# -- modifications -----------------------------------------------------------------------------------------------------
class LoadGrowth(_Strict):
    """Scale loads (p and q, grid table and profiles) by ``factor`` or ``1 + percent / 100``.

    Area: every load (default), the loads below transformer ``trafo`` (its supply area), or the ids in ``loads``.
    """

    kind: Literal["load_growth"]
    factor: Positive | None = None
    percent: float | None = Field(default=None, gt=-100.0)
    trafo: str | None = None
    loads: Ids | None = None

    @model_validator(mode="after")
    def _one_of(self) -> LoadGrowth:
        if (self.factor is None) == (self.percent is None):
            raise ValueError("give exactly one of 'factor' (e.g. 1.1) or 'percent' (e.g. 10)")
        if self.trafo is not None and self.loads is not None:
            raise ValueError("give at most one area: 'trafo' (its supply area) or 'loads' (ids); neither = all loads")
        return self

    @property
    def scale(self) -> float:
        """Multiplier on the selected loads."""
        return self.factor if self.factor is not None else 1.0 + (self.percent or 0.0) / 100.0


class Clock(_Strict):
    """A time of day drawn from a normal distribution: ``mean_h`` hours after midnight (0 ≤ h < 24), ``std_h`` h."""

    mean_h: float = Field(ge=0.0, lt=24.0)
    std_h: float = Field(default=1.0, ge=0.0, le=12.0)


class Ev(_Strict):
    """Add EV chargers at households (rules of :func:`scenarios.electrify`).

    Number: ``share`` of households, or ``n_chargers`` (in expectation with ``placement: random``, exactly
    otherwise). Area: every household (default), ``loads`` (ids) or the loads at ``buses``. ``placement``:
    ``random`` (binomial per household), ``largest_loads`` or ``feeder_end`` (filled in order of rated power or of
    the distance from the supply). Sessions: ``arrival`` / ``departure`` clock times (``arrival_h`` is short for
    ``arrival: {mean_h: ..., std_h: 1.5}``), energy ``kwh_per_session`` or ``km_per_day`` × ``kwh_per_km``
    (default 40 km), ``charging``: ``immediate`` or ``spread`` (until departure).
    """

    kind: Literal["ev"]
    share: Share | None = None
    n_chargers: int | None = Field(default=None, ge=1)
    kw: Positive = 11.0
    arrival: Clock = Clock(mean_h=18.0, std_h=1.5)
    departure: Clock = Clock(mean_h=7.0, std_h=1.0)
    kwh_per_session: Positive | None = None
    km_per_day: Positive | None = None
    kwh_per_km: Positive = 0.18
    charging: Literal["immediate", "spread"] = "immediate"
    placement: Literal["random", "largest_loads", "feeder_end"] = "random"
    loads: Ids | None = None
    buses: Ids | None = None
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _arrival_shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "arrival_h" in data:
            if "arrival" in data:
                raise ValueError("give 'arrival: {mean_h: ..., std_h: ...}' or its shorthand 'arrival_h', not both")
            data = {k: v for k, v in data.items() if k != "arrival_h"} | {
                "arrival": {"mean_h": data["arrival_h"], "std_h": 1.5}
            }
        return data

    @model_validator(mode="after")
    def _one_of(self) -> Ev:
        if (self.share is None) == (self.n_chargers is None):
            raise ValueError("give exactly one of 'share' (0-1 of households) or 'n_chargers'")
        if self.kwh_per_session is not None and self.km_per_day is not None:
            raise ValueError("give at most one of 'kwh_per_session' or 'km_per_day' (energy = km × kwh_per_km)")
        if self.loads is not None and self.buses is not None:
            raise ValueError("give at most one area: 'loads' (ids) or 'buses' (the loads there); neither = all")
        return self

    @property
    def sessions(self) -> EvSessions:
        """The session model of :func:`scenarios.electrify`."""
        return EvSessions(
            arrival_mean_h=self.arrival.mean_h,
            arrival_std_h=self.arrival.std_h,
            departure_mean_h=self.departure.mean_h,
            departure_std_h=self.departure.std_h,
            kwh_per_session=self.kwh_per_session,
            km_per_day=self.km_per_day or 40.0,
            kwh_per_km=self.kwh_per_km,
            rule=self.charging,
        )


class HeatPumps(_Strict):
    """Add heat pumps at a ``share`` of households (rules of :func:`scenarios.electrify`)."""

    kind: Literal["heat_pumps"]
    share: Share
    kw_th: Positive = 8.0
    cop: Positive = 3.0
    loads: Ids | None = None
    seed: int = 0


class Pv(_Strict):
    """Add rooftop PV: ``kwp`` per household at a ``share`` of households, or ``kwp`` at each of ``buses``.

    The profile is the capacity-weighted per-unit shape of the grid's existing sgens whose type contains
    ``profile_type`` (default: "PV", else "RES").
    """

    kind: Literal["pv"]
    kwp: Positive
    share: Share | None = None
    buses: Ids | None = None
    profile_type: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _one_of(self) -> Pv:
        if (self.share is None) == (self.buses is None):
            raise ValueError("give exactly one of 'share' (of households, kwp each) or 'buses' (kwp at each bus)")
        return self


class Battery(_Strict):
    """Add batteries (``kwh``, ``kw``) at ``buses`` or at every bus with PV (``placement: pv``).

    ``rule``: ``self_consumption`` (charge the bus's surplus, cover its deficit) or ``peak_shaving`` (keep the
    bus's net load at ``threshold_pct`` of its peak).
    """

    kind: Literal["battery"]
    kwh: Positive
    kw: Positive
    placement: Literal["pv", "buses"] = "pv"
    buses: Ids | None = None
    rule: Literal["self_consumption", "peak_shaving"] = "self_consumption"
    threshold_pct: float = Field(default=80.0, gt=0.0, le=100.0)
    soc_start: Share = 0.5

    @model_validator(mode="after")
    def _buses(self) -> Battery:
        if (self.placement == "buses") != (self.buses is not None):
            raise ValueError("'buses' is needed with 'placement: buses' and only then")
        return self


class Outage(_Strict):
    """Take lines/transformers out of service, or mark the scenario for N-1 (``n_minus_1: true``).

    N-1 is run by ``scenarios.contingency``; :func:`scenarios.modify.apply` leaves it alone.
    """

    kind: Literal["outage"]
    elements: Ids | None = None
    n_minus_1: bool = False

    @model_validator(mode="after")
    def _one_of(self) -> Outage:
        if (self.elements is None) == (not self.n_minus_1):
            raise ValueError("give either 'elements' (line/trafo ids) or 'n_minus_1: true'")
        return self


class Switching(_Strict):
    """Open and close switches by id."""

    kind: Literal["switching"]
    open: list[str] = []
    close: list[str] = []

    @model_validator(mode="after")
    def _some(self) -> Switching:
        if not self.open and not self.close:
            raise ValueError("give switch ids in 'open' and/or 'close'")
        both = sorted(set(self.open) & set(self.close))
        if both:
            raise ValueError(f"switches {both} are both opened and closed; keep each in one list")
        return self


class TrafoReplacement(_Strict):
    """Replace a transformer by one of rating ``sn_mva`` (same per-unit impedances)."""

    kind: Literal["trafo_replacement"]
    trafo: str
    sn_mva: Positive


class WeatherShift(_Strict):
    """Shift the outdoor temperature by ``delta_c`` °C from ``start`` to ``end`` (inclusive days); heat pumps follow."""

    kind: Literal["weather_shift"]
    delta_c: float
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _order(self) -> WeatherShift:
        if self.end < self.start:
            raise ValueError(f"end {self.end} lies before start {self.start}")
        return self


Modification = Annotated[
    LoadGrowth | Ev | HeatPumps | Pv | Battery | Outage | Switching | TrafoReplacement | WeatherShift,
    Field(discriminator="kind"),
]
MODIFICATION_KINDS: dict[str, type[BaseModel]] = {
    m.model_fields["kind"].annotation.__args__[0]: m  # type: ignore[union-attr]
    for m in (LoadGrowth, Ev, HeatPumps, Pv, Battery, Outage, Switching, TrafoReplacement, WeatherShift)
}

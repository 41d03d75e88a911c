"""What-if scenario specs: pydantic models of a YAML file, its validation errors, and expansion to scenarios.

The modification models live in :mod:`scenarios.spec_mods`, the error formatting in :mod:`scenarios.spec_errors`;
both are re-exported here, so ``from scenarios.spec import Ev, SpecError, ...`` keeps working.

A spec file holds a ``base`` (grid and period) and scenarios given explicitly (``scenarios``), as a cartesian
product of modification options (``sets.cartesian``) or as Monte Carlo draws (``monte_carlo``); see
``docs/design/scenarios.md`` (section "Spec"). :func:`load_spec` reads and validates a file and raises
:class:`SpecError` naming ``file:line`` and the key path of every problem; :meth:`ScenarioSet.expand` returns the
scenarios in a deterministic order with unique names.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator, model_validator

from scenarios.spec_errors import SpecError, format_errors
from scenarios.spec_mods import (
    MODIFICATION_KINDS,
    Battery,
    Clock,
    Ev,
    HeatPumps,
    LoadGrowth,
    Modification,
    Outage,
    Pv,
    Switching,
    TrafoReplacement,
    WeatherShift,
    _Strict,
)

__all__ = [
    "MODIFICATION_KINDS",
    "Base",
    "Battery",
    "Clock",
    "Distribution",
    "Ev",
    "HeatPumps",
    "LoadGrowth",
    "Modification",
    "MonteCarlo",
    "Outage",
    "Pv",
    "Scenario",
    "ScenarioSet",
    "SpecError",
    "Switching",
    "TrafoReplacement",
    "WeatherShift",
    "load_spec",
    "parse_spec",
]


# -- scenarios and sets ------------------------------------------------------------------------------------------------
class Scenario(_Strict):
    """One named list of modifications, applied in order."""

    name: str = Field(min_length=1)
    modifications: list[Modification] = Field(default_factory=list)

    @property
    def n_minus_1(self) -> bool:
        """Whether the scenario asks for an N-1 contingency analysis."""
        return any(isinstance(m, Outage) and m.n_minus_1 for m in self.modifications)


class Base(_Strict):
    """The grid and period every scenario starts from.

    ``grid``: SimBench code, pandapower case name or file (relative to the spec file). Period: ``start``
    (default 2016-01-01, the SimBench year) to ``end`` (exclusive) or ``days`` long (default: one year).
    ``store``: a gridtwin store (zarr folder or fsspec URL) whose ``loads`` (and ``sgens``, ``storage``) groups give
    the profiles instead of SimBench (:func:`scenarios.evaluate.read_store_profiles`).
    """

    grid: str = Field(min_length=1)
    start: dt.datetime = dt.datetime(2016, 1, 1)
    end: dt.datetime | None = None
    days: int | None = Field(default=None, ge=1)
    store: str | None = None

    @model_validator(mode="after")
    def _period(self) -> Base:
        if self.end is not None and self.days is not None:
            raise ValueError("give 'end' or 'days', not both")
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end {self.end} must lie after start {self.start}")
        if self.store is not None and "://" not in self.store and not Path(self.store).exists():
            raise ValueError(f"store {self.store!r} does not exist; give an existing zarr folder or an fsspec URL")
        return self

    @property
    def stop(self) -> dt.datetime:
        """End of the period (exclusive)."""
        if self.end is not None:
            return self.end
        return self.start + dt.timedelta(days=self.days or 366)


class Option(_Strict):
    """One labelled option of a cartesian axis."""

    name: str = Field(min_length=1)
    modifications: list[Modification] = Field(default_factory=list)


class Sets(_Strict):
    """``cartesian``: axis name → options (each a modification list or ``{name, modifications}``)."""

    cartesian: dict[str, Annotated[list[Option | list[Modification]], Field(min_length=1)]]


class Distribution(_Strict):
    """A distribution to draw a parameter from: uniform, normal (optionally clipped), triangular or choice."""

    dist: Literal["uniform", "normal", "triangular", "choice"]
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    sd: float | None = Field(default=None, ge=0.0)
    mode: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _params(self) -> Distribution:
        need = {"uniform": ("low", "high"), "normal": ("mean", "sd"), "triangular": ("low", "mode", "high")}
        need["choice"] = ("values",)
        missing = [k for k in need[self.dist] if getattr(self, k) is None]
        if missing:
            raise ValueError(f"{self.dist} needs {missing}")
        if self.low is not None and self.high is not None and self.high < self.low:
            raise ValueError(f"high {self.high} is below low {self.low}")
        return self

    def draw(self, rng: np.random.Generator, n: int) -> list[Any]:
        """Return ``n`` draws."""
        if self.dist == "uniform":
            x = rng.uniform(self.low, self.high, n)
        elif self.dist == "triangular":
            x = rng.triangular(self.low, self.mode, self.high, n)
        elif self.dist == "normal":
            x = np.clip(rng.normal(self.mean, self.sd, n), self.low, self.high)
        else:
            return [self.values[i] for i in rng.integers(len(self.values or []), size=n)]  # type: ignore[index]
        return x.tolist()


_DRAW_KEY = re.compile(r"(?P<mod>\d+|[a-z_0-9]+)\.(?P<field>[a-z_0-9]+)(?:\.(?P<sub>[a-z_0-9]+))?")


class MonteCarlo(_Strict):
    """``n`` draws (reproducible with ``seed``) of ``modifications`` whose parameters ``draw`` samples.

    Keys of ``draw`` are ``<kind>.<field>`` (``ev.share``) or ``<position>.<field>`` (``0.share``), or one level
    deeper for a nested field (``ev.arrival.mean_h``). Each sample also
    gets its own ``seed`` for the modifications that have one, so placements vary between samples.
    """

    n: int = Field(ge=1)
    seed: int
    name: str = "mc"
    modifications: list[Modification] = Field(min_length=1)
    draw: dict[str, Distribution] = Field(min_length=1)

    @field_validator("draw")
    @classmethod
    def _keys(cls, draw: dict[str, Distribution], info: ValidationInfo) -> dict[str, Distribution]:
        for key in draw:
            _resolve(info.data.get("modifications") or [], key)
        return draw

    def resolve(self, key: str) -> tuple[int, str]:
        """Return (modification position, field) of a ``draw`` key."""
        return _resolve(self.modifications, key)

    def expand(self) -> list[Scenario]:
        """Return the ``n`` sampled scenarios (same seed → same list)."""
        rng = np.random.default_rng(self.seed)
        draws = {key: dist.draw(rng, self.n) for key, dist in self.draw.items()}
        seeds = rng.integers(2**31, size=self.n).tolist()
        width = len(str(self.n - 1))
        out = []
        for i in range(self.n):
            mods = [m.model_dump() for m in self.modifications]
            for m in mods:
                if "seed" in m:
                    m["seed"] = seeds[i]
            for key, values in draws.items():
                pos, field = self.resolve(key)
                target = mods[pos]
                *parents, leaf = field.split(".")
                for part in parents:
                    target = target[part]
                target[leaf] = values[i]
            try:
                out.append(Scenario(name=f"{self.name}-{i:0{width}d}", modifications=mods))  # type: ignore[arg-type]
            except ValidationError as err:
                raise SpecError(f"monte_carlo sample {i}: a drawn value is invalid; narrow 'draw'\n{err}") from None
        return out


def _resolve(modifications: list[Any], key: str) -> tuple[int, str]:
    """Return (modification position, ``field`` or ``field.sub``) of a ``draw`` key; ``ValueError`` if none matches."""
    m = _DRAW_KEY.fullmatch(key)
    if m is None:
        raise ValueError(f"draw key {key!r} must look like 'ev.share' or '0.share'")
    mod, field = m["mod"], m["field"]
    kinds = [x.kind for x in modifications]
    pos = [int(mod)] if mod.isdigit() else [i for i, k in enumerate(kinds) if k == mod]
    if len(pos) != 1 or pos[0] >= len(kinds):
        raise ValueError(f"draw key {key!r}: {mod!r} names {len(pos)} of the modifications {kinds}; use a position")
    model = type(modifications[pos[0]])
    if field not in model.model_fields or field == "kind":
        raise ValueError(f"draw key {key!r}: {kinds[pos[0]]} has no field {field!r}; fields: {_fields(model)}")
    if m["sub"] is None:
        return pos[0], field
    sub_model = getattr(modifications[pos[0]], field)
    if not isinstance(sub_model, BaseModel) or m["sub"] not in type(sub_model).model_fields:
        allowed = list(type(sub_model).model_fields) if isinstance(sub_model, BaseModel) else "none (not a mapping)"
        raise ValueError(f"draw key {key!r}: {field!r} has no field {m['sub']!r}; fields: {allowed}")
    return pos[0], f"{field}.{m['sub']}"


def _fields(model: type[BaseModel]) -> list[str]:
    return [f for f in model.model_fields if f != "kind"]


class ScenarioSet(_Strict):
    """A validated spec file: the base and the scenario definitions."""

    base: Base
    scenarios: list[Scenario] = Field(default_factory=list)
    sets: Sets | None = None
    monte_carlo: MonteCarlo | None = None

    @model_validator(mode="after")
    def _some(self) -> ScenarioSet:
        if not self.scenarios and self.sets is None and self.monte_carlo is None:
            raise ValueError("give 'scenarios', 'sets' or 'monte_carlo'")
        return self

    def expand(self) -> list[Scenario]:
        """Return every scenario: explicit ones, then the cartesian product (last axis fastest), then Monte Carlo.

        Cartesian names are ``axis=option`` joined by ``,`` (option = its ``name`` or its position).

        Raises
        ------
        SpecError
            If two scenarios share a name.
        """
        out = list(self.scenarios)
        if self.sets is not None:
            out += _cartesian(self.sets.cartesian)
        if self.monte_carlo is not None:
            out += self.monte_carlo.expand()
        names = [s.name for s in out]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise SpecError(f"scenario names {dup} occur more than once; names must be unique")
        return out


def _cartesian(axes: dict[str, list[Option | list[Any]]]) -> list[Scenario]:
    """Scenarios of the product of the axes' options (itertools order)."""
    import itertools

    labelled = [
        [(o.name, o.modifications) if isinstance(o, Option) else (str(i), o) for i, o in enumerate(options)]
        for options in axes.values()
    ]
    return [
        Scenario(
            name=",".join(f"{axis}={label}" for axis, (label, _) in zip(axes, combo, strict=True)),
            modifications=[m for _, mods in combo for m in mods],
        )
        for combo in itertools.product(*labelled)
    ]


# -- reading -----------------------------------------------------------------------------------------------------------
def parse_spec(text: str, source: str = "<spec>", root: Path | None = None) -> ScenarioSet:
    """Validate YAML ``text``; errors name ``source:line`` and the key path.

    Parameters
    ----------
    text : str
        The YAML document.
    source : str
        File name used in error messages.
    root : Path, optional
        Folder that relative ``grid`` and ``store`` paths are taken from.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"{source}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{source}:1: the spec must be a mapping with 'base' and 'scenarios'/'sets'/'monte_carlo'")
    base = data.get("base")
    if root is not None and isinstance(base, dict):
        for key in ("grid", "store"):
            if isinstance(base.get(key), str) and (root / base[key]).exists():
                base[key] = str(root / base[key])
    try:
        return ScenarioSet.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_errors(err, data, text, source, _SECTIONS)) from None


def load_spec(path: str | Path) -> ScenarioSet:
    """Read and validate a spec file (YAML).

    Raises
    ------
    SpecError
        Listing every problem as ``file:line: key.path: what is wrong; how to fix it``.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    return parse_spec(path.read_text(encoding="utf-8"), str(path), path.parent)


_SECTIONS: dict[str, type[BaseModel]] = {
    "": ScenarioSet,
    "base": Base,
    "scenarios": Scenario,
    "monte_carlo": MonteCarlo,
    "sets": Sets,
    "draw": Distribution,
    "cartesian": Option,
    "arrival": Clock,
    "departure": Clock,
}

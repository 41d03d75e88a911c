"""What-if scenario specs: pydantic models of a YAML file, its validation errors, and expansion to scenarios.

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
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "Base",
    "Battery",
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


class SpecError(ValueError):
    """A spec file is invalid; the message lists ``file:line: key.path: problem`` lines."""


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


class Ev(_Strict):
    """Add uncontrolled EV chargers at households (rules of :func:`scenarios.electrify`).

    ``share`` of households, or ``n_chargers`` in expectation (converted to a share of all households of the
    selected loads). ``arrival_h`` shifts the mean arrival time (electrify's default 18:00) by rolling the profile.
    """

    kind: Literal["ev"]
    share: Share | None = None
    n_chargers: int | None = Field(default=None, ge=1)
    kw: Positive = 11.0
    arrival_h: float = Field(default=18.0, ge=12.0, le=23.75)
    loads: Ids | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _one_of(self) -> Ev:
        if (self.share is None) == (self.n_chargers is None):
            raise ValueError("give exactly one of 'share' (0-1 of households) or 'n_chargers'")
        return self


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


# -- scenarios and sets ------------------------------------------------------------------------------------------------
class Scenario(_Strict):
    """One named list of modifications, applied in order."""

    name: str = Field(min_length=1)
    modifications: list[Modification] = []

    @property
    def n_minus_1(self) -> bool:
        """Whether the scenario asks for an N-1 contingency analysis."""
        return any(isinstance(m, Outage) and m.n_minus_1 for m in self.modifications)


class Base(_Strict):
    """The grid and period every scenario starts from.

    ``grid``: SimBench code, pandapower case name or file (relative to the spec file). Period: ``start``
    (default 2016-01-01, the SimBench year) to ``end`` (exclusive) or ``days`` long (default: one year).
    ``store``: a measurement store (zarr folder or fsspec URL) for measured data.
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
    modifications: list[Modification] = []


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


_DRAW_KEY = re.compile(r"(?P<mod>\d+|[a-z_0-9]+)\.(?P<field>[a-z_0-9]+)")


class MonteCarlo(_Strict):
    """``n`` draws (reproducible with ``seed``) of ``modifications`` whose parameters ``draw`` samples.

    Keys of ``draw`` are ``<kind>.<field>`` (``ev.share``) or ``<position>.<field>`` (``0.share``). Each sample also
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
                mods[pos][field] = values[i]
            try:
                out.append(Scenario(name=f"{self.name}-{i:0{width}d}", modifications=mods))  # type: ignore[arg-type]
            except ValidationError as err:
                raise SpecError(f"monte_carlo sample {i}: a drawn value is invalid; narrow 'draw'\n{err}") from None
        return out


def _resolve(modifications: list[Any], key: str) -> tuple[int, str]:
    """Return (modification position, field) of a ``draw`` key (raise ``ValueError`` when it matches none)."""
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
    return pos[0], field


def _fields(model: type[BaseModel]) -> list[str]:
    return [f for f in model.model_fields if f != "kind"]


class ScenarioSet(_Strict):
    """A validated spec file: the base and the scenario definitions."""

    base: Base
    scenarios: list[Scenario] = []
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
        raise SpecError(_format_errors(err, data, _yaml_lines(text), source)) from None


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


# -- error messages ----------------------------------------------------------------------------------------------------
Loc = tuple[str | int, ...]
_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or fix its spelling",
    "union_tag_not_found": f"add 'kind:' with one of {list(MODIFICATION_KINDS)}",
}
_SECTIONS: dict[str, type[BaseModel]] = {
    "base": Base,
    "scenarios": Scenario,
    "monte_carlo": MonteCarlo,
    "sets": Sets,
    "draw": Distribution,
    "cartesian": Option,
}


def _yaml_lines(text: str) -> dict[Loc, int]:
    """Key path → 1-based line of every mapping key and sequence item of a YAML document."""
    lines: dict[Loc, int] = {}

    def walk(node: yaml.Node, path: Loc) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, key.value)] = key.start_mark.line + 1
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _data_path(loc: Loc, data: Any) -> tuple[Loc, Any]:
    """The key path of a pydantic ``loc`` in ``data`` (union tags and type names dropped) and the parent there."""
    path: list[str | int] = []
    node, parent = data, data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            parent, node = node, node[part]
            path.append(part)
        elif isinstance(node, dict) and part not in MODIFICATION_KINDS and not str(part).startswith(_TYPE_TAGS):
            parent, node = node, None  # a missing or unknown key
            path.append(part)
    return tuple(path), parent


_TYPE_TAGS = ("list[", "Option")


def _dotted(path: Loc) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "(top level)"


def _allowed(path: Loc, parent: Any) -> list[str]:
    """Keys allowed next to an unknown key at ``path``."""
    if isinstance(parent, dict) and parent.get("kind") in MODIFICATION_KINDS:
        return list(MODIFICATION_KINDS[parent["kind"]].model_fields)
    named = [p for p in path[:-1] if isinstance(p, str)]
    if named and named[-1] in _SECTIONS:
        return list(_SECTIONS[named[-1]].model_fields)
    if len(named) >= 2 and named[-2] in _SECTIONS:
        return list(_SECTIONS[named[-2]].model_fields)
    return list(ScenarioSet.model_fields) if len(path) == 1 else []


def _format_errors(err: ValidationError, data: Any, lines: dict[Loc, int], source: str) -> str:
    """One ``source:line: key.path: message; hint`` line per pydantic error."""
    found = [(e, *_data_path(tuple(e["loc"]), data)) for e in err.errors()]
    # a union (option: list or mapping) reports a type error for the branch not taken: keep the deeper errors
    found = [
        (e, path, parent)
        for e, path, parent in found
        if not (str(e["type"]).endswith("_type") and any(p[: len(path)] == path and p != path for _, p, _ in found))
    ]
    out = [f"{source}: {len(found)} problem(s) in the scenario spec:"]
    for e, key_path, parent in found:
        tagged = e["type"] in ("union_tag_invalid", "union_tag_not_found")
        path = (*key_path, "kind") if tagged else key_path
        line = next((lines[path[:k]] for k in range(len(path), -1, -1) if path[:k] in lines), 1)
        msg = str(e["msg"]).removeprefix("Value error, ")
        hint = _HINTS.get(e["type"], "")
        if e["type"] == "extra_forbidden":
            hint += f"; allowed keys: {_allowed(path, parent)}"
        out.append(f"  {source}:{line}: {_dotted(path)}: {msg}" + (f"; {hint}" if hint else ""))
    return "\n".join(out)

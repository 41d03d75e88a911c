"""Tests of scenarios.spec: validation messages (key path and line), cartesian sets, Monte Carlo reproducibility."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import pytest

from scenarios.spec import Ev, HeatPumps, LoadGrowth, Scenario, SpecError, load_spec, parse_spec

if TYPE_CHECKING:
    from pathlib import Path

BASE = "base:\n  grid: 1-MV-urban--0-sw\n  days: 7\n"


def _spec(body: str) -> str:
    return BASE + textwrap.dedent(body)


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.yaml")
    return str(info.value)


def test_bad_share_names_key_path_and_line() -> None:
    msg = _error(
        _spec("""\
        scenarios:
          - name: a
            modifications:
              - kind: ev
                share: 1.5
        """)
    )
    # line 8: the 'share:' key (3 base lines + 5)
    assert "spec.yaml:8: scenarios[0].modifications[0].share: must be between 0 and 1" in msg
    assert "1 problem(s)" in msg


def test_unknown_kind_and_unknown_key_are_reported_together() -> None:
    msg = _error(
        _spec("""\
        scenarios:
          - name: a
            modifications:
              - {kind: load_growth, percent: 10}
              - kind: teleport
          - name: b
            modifications:
              - kind: heat_pumps
                share: 0.2
                colour: red
        """)
    )
    assert "spec.yaml:8: scenarios[0].modifications[1].kind: Input tag 'teleport'" in msg
    assert "'load_growth'" in msg  # the accepted kinds are listed
    assert "spec.yaml:13: scenarios[1].modifications[0].colour: Extra inputs are not permitted" in msg
    assert "allowed keys: ['kind', 'share', 'kw_th', 'cop', 'loads', 'seed']" in msg
    assert "2 problem(s)" in msg


def test_missing_base_and_unknown_top_level_key() -> None:
    msg = _error("scenarioz: []\nscenarios:\n  - name: a\n")
    assert "spec.yaml:1: base: Field required; add it" in msg
    assert "spec.yaml:1: scenarioz: Extra inputs are not permitted" in msg
    assert "allowed keys: ['base', 'scenarios', 'sets', 'monte_carlo']" in msg


def test_cross_field_rules() -> None:
    msg = _error(
        _spec("""\
        scenarios:
          - name: a
            modifications:
              - {kind: load_growth, percent: 10, factor: 1.1}
              - {kind: outage}
              - {kind: weather_shift, delta_c: -5, start: 2016-01-10, end: 2016-01-02}
        """)
    )
    assert "scenarios[0].modifications[0]: give exactly one of 'factor'" in msg
    assert "scenarios[0].modifications[1]: give either 'elements'" in msg
    assert "scenarios[0].modifications[2]: end 2016-01-02 lies before start 2016-01-10" in msg


def test_base_period_and_store_are_checked(tmp_path: Path) -> None:
    msg = _error(f"base: {{grid: x, days: 3, end: 2016-02-01, store: {tmp_path / 'none.zarr'}}}\nscenarios: []\n")
    assert "spec.yaml:1: base: give 'end' or 'days', not both" in msg
    msg = _error(f"base: {{grid: x, store: {tmp_path / 'none.zarr'}}}\nscenarios: [{{name: a}}]\n")
    assert "none.zarr' does not exist" in msg
    (tmp_path / "m.zarr").mkdir()
    spec = parse_spec(f"base: {{grid: x, store: {tmp_path / 'm.zarr'}}}\nscenarios: [{{name: a}}]\n")
    assert spec.base.store == str(tmp_path / "m.zarr")
    assert spec.base.stop.year == 2017  # one year by default


def test_load_spec_reads_a_file_and_resolves_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "grid.json").write_text("{}")
    path = tmp_path / "what_if.yaml"
    path.write_text("base: {grid: grid.json, start: 2016-01-05, days: 2}\nscenarios: [{name: today}]\n")
    spec = load_spec(path)
    assert spec.base.grid == str(tmp_path / "grid.json")
    assert [s.name for s in spec.expand()] == ["today"]
    path.write_text("base: {grid: grid.json}\nscenarios: [{name: a, modifications: [{kind: ev}]}]\n")
    with pytest.raises(SpecError, match=r"what_if.yaml:2: scenarios\[0\]\.modifications\[0\]: give exactly one"):
        load_spec(path)


def test_cartesian_product_sizes_names_and_order() -> None:
    spec = parse_spec(
        _spec("""\
        scenarios:
          - name: today
        sets:
          cartesian:
            ev:
              - []
              - [{kind: ev, share: 0.2}]
              - {name: high, modifications: [{kind: ev, share: 0.6}]}
            hp:
              - {name: none}
              - {name: some, modifications: [{kind: heat_pumps, share: 0.3}, {kind: load_growth, factor: 1.05}]}
        """)
    )
    scenarios = spec.expand()
    assert [s.name for s in scenarios] == [
        "today",
        "ev=0,hp=none",
        "ev=0,hp=some",
        "ev=1,hp=none",
        "ev=1,hp=some",
        "ev=high,hp=none",
        "ev=high,hp=some",
    ]
    last = scenarios[-1].modifications
    assert [type(m) for m in last] == [Ev, HeatPumps, LoadGrowth]
    assert last[0].share == 0.6
    assert scenarios[1].modifications == []


def test_duplicate_names_are_rejected() -> None:
    spec = parse_spec(_spec("scenarios: [{name: a}, {name: a}]\n"))
    with pytest.raises(SpecError, match=r"names \['a'\] occur more than once"):
        spec.expand()


MC = """\
monte_carlo:
  n: 20
  seed: {seed}
  modifications:
    - {{kind: ev, share: 0.1}}
    - {{kind: load_growth, factor: 1.0}}
  draw:
    ev.share: {{dist: uniform, low: 0.1, high: 0.5}}
    1.factor: {{dist: normal, mean: 1.1, sd: 0.05, low: 1.0}}
"""


def test_monte_carlo_is_reproducible_with_its_seed() -> None:
    first = parse_spec(_spec(MC.format(seed=1))).expand()
    again = parse_spec(_spec(MC.format(seed=1))).expand()
    other = parse_spec(_spec(MC.format(seed=2))).expand()
    assert first == again
    assert len(first) == 20
    assert [s.name for s in first] == [f"mc-{i:02d}" for i in range(20)]
    shares = [s.modifications[0].share for s in first]
    factors = [s.modifications[1].factor for s in first]
    assert all(0.1 <= x <= 0.5 for x in shares)
    assert len(set(shares)) == 20
    assert min(factors) >= 1.0  # the normal draw is clipped at 'low'
    assert len({s.modifications[0].seed for s in first}) == 20  # placements differ between samples
    assert shares != [s.modifications[0].share for s in other]


def test_monte_carlo_draw_keys_and_invalid_draws() -> None:
    msg = _error(_spec(MC.format(seed=1).replace("ev.share", "ev.shar")))
    # line 10: "draw:" (3 base lines + 7)
    assert "spec.yaml:10: monte_carlo.draw: draw key 'ev.shar': ev has no field 'shar'; fields: ['share'," in msg
    wide = MC.format(seed=1).replace("uniform, low: 0.1, high: 0.5", "uniform, low: 0.5, high: 1.5")
    spec = parse_spec(_spec(wide))
    with pytest.raises(SpecError, match="monte_carlo sample 0: a drawn value is invalid"):
        spec.expand()


def test_n_minus_1_is_exposed() -> None:
    spec = parse_spec(
        _spec("""\
        scenarios:
          - {name: n1, modifications: [{kind: outage, n_minus_1: true}]}
          - {name: cut, modifications: [{kind: outage, elements: [line/1]}]}
        """)
    )
    n1, cut = spec.expand()
    assert n1.n_minus_1
    assert not cut.n_minus_1
    assert Scenario(name="x").n_minus_1 is False

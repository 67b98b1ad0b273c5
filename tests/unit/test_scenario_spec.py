from __future__ import annotations

from pathlib import Path

import pytest

from netscaffold.errors import ConfigError
from netscaffold.scenarios.spec import SCENARIO_DIR, load_scenario, scenario_path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_shipped_default_loads() -> None:
    spec = load_scenario(scenario_path("default"))
    assert spec.name == "default"
    assert spec.workload.kind == "microservices"
    assert "oracle" in spec.strategies
    assert scenario_path("default") == SCENARIO_DIR / "default.yaml"


def test_call_trace_replays_start_from_the_trace_scenario() -> None:
    from netscaffold.cli.run import base_scenario

    assert base_scenario(None, Path("calls.csv")) == "trace"
    assert base_scenario(None, None) == "default"
    assert base_scenario("small", Path("calls.csv")) == "small"
    spec = load_scenario(scenario_path("trace"), {"workload": {"kind": "flow-trace", "flows": "calls.csv"}})
    assert spec.workload.kind == "flow-trace"
    assert spec.risk.min_probability == 0.001 < load_scenario(scenario_path("default")).risk.min_probability


def test_unknown_key_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nseed: 1\ntopology:\n  spines: 2\n  colour: red\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    message = str(info.value)
    assert f"{path}:5" in message
    assert "topology.colour" in message
    assert "Extra inputs are not permitted" in message


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nduration_s: soon\n")
    with pytest.raises(ConfigError, match=r"s\.yaml:2: field 'duration_s'"):
        load_scenario(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strategies: [reactive, scaffold:crystal-ball]\n", "unknown strategy 'scaffold:crystal-ball'"),
        ("budget:\n  rule_slots_per_device: -3\n", "greater than or equal to 0"),
        ("budget:\n  link_fraction: 1.5\n", "less than or equal to 1"),
        ("seed: [1, 2\n", "invalid YAML"),
        ("- a\n- b\n", "a scenario must be a YAML mapping"),
    ],
)
def test_bad_scenarios(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_scenario(write(tmp_path, text))


def test_unknown_scenario_name() -> None:
    with pytest.raises(ConfigError, match=r"unknown scenario 'nope' \(shipped: .*default"):
        scenario_path("nope")
    with pytest.raises(ConfigError, match="scenario file does not exist"):
        scenario_path("missing.yaml")


@pytest.mark.parametrize(("override", "expected"), [({}, None), ({"keep_probability": 0.2}, 0.2)])
def test_refiner_keeps_idle_permits_down_to_the_scaffolding_threshold(
    override: dict[str, float], expected: float | None
) -> None:
    """By default the refiner keeps an idle permit while the scaffolder would still install it (the
    lowest min_probability), so it never drops what the next tick puts straight back."""
    from netscaffold.scenarios.runner import ScenarioRunner

    spec = load_scenario(scenario_path("small"), {"refine": override} if override else None)
    runner = ScenarioRunner(spec)
    engine = runner._engine(runner._predictor("scaffold:naive", runner.new_recorder()))
    assert engine.refiner is not None
    lowest = min(r.min_probability for r in spec.all_risks())
    assert engine.refiner.policy.keep_probability == (lowest if expected is None else expected)


def test_keep_probability_out_of_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"refine\.keep_probability"):
        load_scenario(write(tmp_path, "name: x\nrefine:\n  keep_probability: 1.5\n"))


def test_lifecycle_can_be_switched_off_and_its_settle_time_set() -> None:
    from netscaffold.scenarios.runner import ScenarioRunner

    on = ScenarioRunner(load_scenario(scenario_path("small"), {"lifecycle": {"settle_s": 12.0}}))
    assert on.workload.events, "the small scenario has orchestrator events"
    life = on._lifecycle()
    assert life is not None
    assert life.settle_s == 12.0
    off = ScenarioRunner(load_scenario(scenario_path("small"), {"lifecycle": {"enabled": False}}))
    assert off._lifecycle() is None

"""Validation runs at low fidelity only where the cost model says it is clearly cheaper."""

from __future__ import annotations

from rankwright.agent.spec import LOW_FIDELITY_MIN_SAVING, CampaignSpec, fidelity_saving, low_fidelity
from rankwright.targets.builtin import builtin_target


def _spec(rows: int, epochs: int, **strategy) -> tuple[CampaignSpec, object]:
    base = {"data": {"source": "synthetic", "synthetic": {"rows": rows}}, "train": {"epochs": epochs}}
    spec = CampaignSpec.model_validate({"name": "f", "base_config": base, "budget": {"amount": 1.0},
                                        "strategy": strategy})
    return spec, builtin_target("dnn", base)


def test_small_runs_dominated_by_start_up_validate_at_full_fidelity():
    spec, target = _spec(10_000, 1)
    saving = fidelity_saving(spec, target)
    assert saving is not None and 0 < saving < LOW_FIDELITY_MIN_SAVING
    assert low_fidelity(spec, target) == {}


def test_large_runs_validate_on_half_the_rows():
    spec, target = _spec(2_000_000, 3)
    assert fidelity_saving(spec, target) > LOW_FIDELITY_MIN_SAVING
    assert low_fidelity(spec, target) == {"data.train_fraction": 0.5}


def test_the_spec_decides_when_it_says():
    spec, target = _spec(10_000, 1, low_fidelity={"data.train_fraction": 0.5})
    assert low_fidelity(spec, target) == {"data.train_fraction": 0.5}
    spec, target = _spec(2_000_000, 3, low_fidelity={})
    assert low_fidelity(spec, target) == {}

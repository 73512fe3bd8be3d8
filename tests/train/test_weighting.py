"""Loss weightings as combiners: equal, Kendall, uncertainty; vector and per-task forms agree."""

import math

import pytest
import torch

from negtransfer.train.weighting import EqualWeighting, KendallWeighting, UncertaintyWeighting, make_weighting


def test_weightings_follow_their_formulas_and_skip_absent_tasks():
    losses = torch.tensor([1.0, 2.0, 3.0])
    present = torch.tensor([True, False, True])
    assert EqualWeighting()(losses, present).item() == pytest.approx(4.0)
    kendall = KendallWeighting(3)
    with torch.no_grad():
        kendall.log_variance[:] = torch.tensor([0.0, 1.0, 2.0])
    assert kendall(losses, present).item() == pytest.approx(1.0 + 3.0 * math.exp(-2.0) + 1.0)
    uncertainty = UncertaintyWeighting(3)
    with torch.no_grad():
        uncertainty.log_variance[:] = torch.tensor([0.0, 1.0, 2.0])
    assert uncertainty(losses).item() == pytest.approx(
        0.5 + 2.0 / (2 * math.e) + 0.5 + 3.0 / (2 * math.exp(2.0)) + 1.0)
    for weighting in (EqualWeighting(), kendall, uncertainty):
        terms = weighting.terms(losses)
        for t in range(3):
            assert weighting.task_term(t, losses[t]).item() == pytest.approx(terms[t].item())


def test_weights_are_learned_parameters_and_names_are_checked():
    assert [p.shape for p in KendallWeighting(4).parameters()] == [torch.Size([4])]
    assert list(EqualWeighting().parameters()) == []
    assert isinstance(make_weighting("kendall", 2), KendallWeighting)
    with pytest.raises(ValueError, match="unknown loss weighting 'gradnorm'.*equal, kendall, uncertainty"):
        make_weighting("gradnorm", 2)

"""The one module of optimiser update rules agrees with torch.optim's SGD and Adam."""

import pytest
import torch

from negtransfer.train.update_rules import adam_bias_corrections, adam_direction, adam_moments, sgd_direction

DT = torch.float64


@pytest.mark.parametrize("options", [dict(momentum=0.0), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                     dict(momentum=0.8, dampening=0.3, weight_decay=0.01)])
def test_sgd_direction_is_torch_sgd(options):
    gen = torch.Generator().manual_seed(0)
    p = torch.randn(5, dtype=DT, generator=gen, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1, **options)
    theta, buf = p.detach().clone(), None
    for _ in range(3):
        g = torch.randn(5, dtype=DT, generator=gen)
        direction, buf = sgd_direction(g, buf, theta, **options)
        theta = theta - 0.1 * direction
        p.grad = g.clone()
        opt.step()
    torch.testing.assert_close(theta, p.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_rules_are_torch_adam(amsgrad):
    gen = torch.Generator().manual_seed(1)
    p = torch.randn(5, dtype=DT, generator=gen, requires_grad=True)
    opt = torch.optim.Adam([p], lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=amsgrad)
    theta, m, v, vmax = p.detach().clone(), None, None, None
    for step in range(1, 4):
        g = torch.randn(5, dtype=DT, generator=gen)
        m, v = adam_moments(g, m, v, theta, betas=(0.8, 0.99), weight_decay=0.1)
        vmax = v if vmax is None else torch.maximum(vmax, v)
        bc1, bc2 = adam_bias_corrections(step, (0.8, 0.99))
        theta = theta - 0.01 * adam_direction(m, v, bc1, bc2, eps=1e-6, max_exp_avg_sq=vmax if amsgrad else None)
        p.grad = g.clone()
        opt.step()
    torch.testing.assert_close(theta, p.detach(), rtol=1e-10, atol=1e-12)


def test_inplace_sgd_updates_the_buffer_it_is_given():
    buf = torch.ones(3)
    direction, new = sgd_direction(torch.full((3,), 2.0), buf, momentum=0.5, inplace=True)
    assert new is buf and torch.equal(buf, torch.full((3,), 2.5)) and torch.equal(direction, buf)

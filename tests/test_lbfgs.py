"""lbfgs.py: same trajectory as torch.optim.LBFGS (one evaluation per step) and converges."""

from __future__ import annotations

import torch

from nstcli.lbfgs import LBFGS


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()


def test_matches_torch_lbfgs_step_for_step() -> None:
    start = torch.linspace(-1.0, 0.5, 6, dtype=torch.float32)
    reference = start.clone().requires_grad_(True)
    torch_lbfgs = torch.optim.LBFGS([reference], lr=1, max_iter=1, history_size=5, tolerance_grad=-1,
                                    tolerance_change=-1)  # fmt: skip

    def closure() -> torch.Tensor:
        torch_lbfgs.zero_grad()
        loss = rosenbrock(reference)
        loss.backward()
        return loss

    ours = start.clone().requires_grad_(True)
    optimizer = LBFGS(ours.detach(), history=5)
    for _ in range(12):  # more than the history, so the ring buffer wraps
        torch_lbfgs.step(closure)
        (gradient,) = torch.autograd.grad(rosenbrock(ours), ours)
        optimizer.step(gradient)
        assert torch.allclose(ours.detach(), reference.detach(), rtol=1e-4, atol=1e-5)


def test_a_tiny_valued_objective_still_converges() -> None:
    # torch's absolute curvature test (s.y > 1e-10) would reject every pair here and crawl.
    x = torch.ones(100, requires_grad=True)
    optimizer = LBFGS(x.detach(), history=10)
    for _ in range(20):
        (gradient,) = torch.autograd.grad(1e-6 * (x**2).sum(), x)
        optimizer.step(gradient)
    assert x.detach().abs().max() < 1e-3


def test_converges_on_an_ill_conditioned_quadratic() -> None:
    scales = torch.logspace(0, 3, 50)
    x = torch.ones(50, requires_grad=True)
    optimizer = LBFGS(x.detach(), history=10)
    initial = float(scales.sum())
    for _ in range(100):
        (gradient,) = torch.autograd.grad((scales * x**2).sum(), x)
        optimizer.step(gradient)
    assert (scales * x.detach() ** 2).sum() < 1e-5 * initial


def test_a_step_cap_keeps_a_flattening_objective_from_diverging() -> None:
    """sqrt(1 + x^2) flattens away from 0: the curvature estimate grows, and unit steps overshoot ever further."""

    def run(cap: float | None) -> tuple[torch.Tensor, list[float]]:
        x = torch.full((10,), 3.0, requires_grad=True)
        optimizer = LBFGS(x.detach(), history=10, max_step_rms=cap)
        steps = []
        for _ in range(40):
            before = x.detach().clone()
            (gradient,) = torch.autograd.grad(torch.sqrt(1 + x**2).sum(), x)
            optimizer.step(gradient)
            steps.append(float((x.detach() - before).pow(2).mean().sqrt()))
        return x.detach(), steps

    free, _ = run(None)
    capped, steps = run(1.0)
    assert free.abs().max() > 100  # thrown far away
    assert capped.abs().max() < 1e-3 and max(steps) <= 1.0 + 1e-5

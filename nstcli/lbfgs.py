"""L-BFGS with one gradient per step and no host synchronisation.

torch.optim.LBFGS converts scalars to Python numbers (``float(loss)``, ``alpha=-al[i]``), which on
a GPU waits for the device about 2 x history times per step, and it wants a closure. This version
keeps every scalar on the device and takes the gradient from the caller, so a step is a fixed
sequence of kernels. It follows torch's algorithm (unit step, first step scaled by 1/|g|_1,
initial Hessian ys/yy) with one deliberate change: the curvature pair uses the step actually taken
(``x - x_prev``), which stays correct when the caller projects x back into its box after a step.
Pairs with ys <= 1e-10 still take a history slot but are ignored (their rho is 0).
"""

from __future__ import annotations

import torch


class LBFGS:
    def __init__(self, x: torch.Tensor, history: int = 100, lr: float = 1.0):
        size = x.numel()
        self.x = x
        self.lr = lr
        self.history = history
        self.steps = 0
        self.s = torch.zeros(history, size, device=x.device)
        self.y = torch.zeros(history, size, device=x.device)
        self.rho = torch.zeros(history, device=x.device)
        self.alpha = torch.zeros(history, device=x.device)
        self.h_diag = torch.ones((), device=x.device)
        self.previous_x = torch.zeros(size, device=x.device)
        self.previous_g = torch.zeros(size, device=x.device)

    @torch.no_grad()
    def step(self, gradient: torch.Tensor) -> None:
        """Move ``x`` (in place) along the L-BFGS direction for ``gradient`` = dL/dx at the current x."""
        x, g = self.x.view(-1), gradient.reshape(-1).float()
        if self.steps == 0:
            direction = g * (-torch.clamp(1.0 / g.abs().sum(), max=1.0))
        else:
            self._remember(x, g)
            direction = self._direction(g)
        self.previous_x.copy_(x)
        self.previous_g.copy_(g)
        x.add_(direction, alpha=self.lr)
        self.steps += 1

    def _remember(self, x: torch.Tensor, g: torch.Tensor) -> None:
        slot = (self.steps - 1) % self.history
        s, y = self.s[slot], self.y[slot]
        torch.sub(x, self.previous_x, out=s)
        torch.sub(g, self.previous_g, out=y)
        ys = torch.dot(y, s)
        useful = ys > 1e-10
        self.rho[slot] = torch.where(useful, 1.0 / ys, torch.zeros_like(ys))
        self.h_diag.copy_(torch.where(useful, ys / torch.dot(y, y), self.h_diag))

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """Two-loop recursion over the stored pairs, newest first."""
        filled = min(self.steps, self.history)
        newest = (self.steps - 1) % self.history
        order = [(newest - k) % self.history for k in range(filled)]
        q = g.neg()
        for slot in order:
            self.alpha[slot] = torch.dot(self.s[slot], q) * self.rho[slot]
            q.addcmul_(self.y[slot], self.alpha[slot], value=-1.0)
        r = q.mul_(self.h_diag)
        for slot in reversed(order):
            beta = torch.dot(self.y[slot], r) * self.rho[slot]
            r.addcmul_(self.s[slot], self.alpha[slot] - beta)
        return r

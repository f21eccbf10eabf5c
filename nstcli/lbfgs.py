"""L-BFGS with one gradient per step, no host synchronisation and a fixed kernel sequence.

torch.optim.LBFGS converts scalars to Python numbers (``float(loss)``, ``alpha=-al[i]``), which on
a GPU waits for the device about 2 x history times per step, and its two-loop recursion launches
~4 small kernels per stored pair (800 at history 100: ~20 ms at 512 px on an H100, more than the
network). This version uses the compact representation of the L-BFGS inverse Hessian (Byrd,
Nocedal & Schnabel 1994; Nocedal & Wright eq. 7.24):

    H g = gamma g + S^T u - gamma Y^T p,   p = R^-1 (S g),   u = R^-T ((D + gamma Y Y^T) p - gamma Y g)

with S, Y the stored steps and gradient changes (rows, in a ring buffer), R the upper triangle of
S Y^T in time order, D its diagonal and gamma = s.y / y.y of the newest pair. That is a handful of
matrix-vector products and two small triangular solves whatever the history size, all with device
tensors, so a whole step can be captured in a CUDA graph.

It follows torch's algorithm (unit step, first step scaled by min(1, 1/|g|_1), pairs without
positive curvature skipped) with two deliberate changes: the pair uses the step actually taken
(``x - x_prev``), which stays correct when the caller projects x back into its box after a step;
and a pair counts as curved when s.y > 1e-10 |s| |y| rather than s.y > 1e-10, which does not depend
on the scale of the loss (torch's absolute test rejects every pair of a small-valued objective,
e.g. a TV term alone, and then never takes more than a tiny gradient step). With ``max_step_rms``, a step
longer than that (root mean square over the elements) is shortened to it, on the device: a trust region
for objectives that flatten out, where the curvature estimate grows without bound and unit steps diverge.
"""

from __future__ import annotations

import torch


class LBFGS:
    def __init__(self, x: torch.Tensor, history: int = 100, lr: float = 1.0, max_step_rms: float | None = None):
        size, device = x.numel(), x.device
        self.x = x
        self.lr = lr
        self.max_step_rms = max_step_rms
        self.steps = 0  # host counter: the first step is special, all later ones are the same kernels
        self.s = torch.zeros(history, size, device=device)
        self.y = torch.zeros(history, size, device=device)
        self.sy = torch.zeros(history, history, device=device)  # sy[i, j] = s_i . y_j
        self.yy = torch.zeros(history, history, device=device)  # yy[i, j] = y_i . y_j
        self.age = torch.full((history,), -1.0, device=device)  # step that wrote each slot, -1 = empty
        self.head = torch.zeros(1, dtype=torch.long, device=device)  # next slot to write
        self.clock = torch.zeros((), device=device)
        self.gamma = torch.ones((), device=device)
        self.previous_x = torch.zeros(size, device=device)
        self.previous_g = torch.zeros(size, device=device)

    @torch.no_grad()
    def step(self, gradient: torch.Tensor) -> None:
        """Move ``x`` (in place) along the L-BFGS direction for ``gradient`` = dL/dx at the current x."""
        x, g = self.x.view(-1), gradient.reshape(-1).float()
        if self.steps == 0:
            direction = g * (-torch.clamp(1.0 / g.abs().sum(), max=1.0))
        else:
            self._remember(x, g)
            direction = self._direction(g)
        if self.max_step_rms is not None:
            rms = torch.linalg.vector_norm(direction) * (self.lr / direction.numel() ** 0.5)
            direction = direction * torch.clamp(self.max_step_rms / rms, max=1.0)
        self.previous_x.copy_(x)
        self.previous_g.copy_(g)
        x.add_(direction, alpha=self.lr)
        self.steps += 1

    def _remember(self, x: torch.Tensor, g: torch.Tensor) -> None:
        """Store the newest (s, y) pair in the ring buffer if it has positive curvature."""
        s, y = x - self.previous_x, g - self.previous_g
        ys = torch.dot(y, s)
        accept = ys > 1e-10 * torch.linalg.vector_norm(s) * torch.linalg.vector_norm(y)
        slot = self.head
        s = torch.where(accept, s, self.s.index_select(0, slot)[0])
        y = torch.where(accept, y, self.y.index_select(0, slot)[0])
        self.s.index_copy_(0, slot, s[None])
        self.y.index_copy_(0, slot, y[None])
        self.sy.index_copy_(0, slot, (self.y @ s)[None])
        self.sy.index_copy_(1, slot, (self.s @ y)[:, None])
        y_products = self.y @ y
        self.yy.index_copy_(0, slot, y_products[None])
        self.yy.index_copy_(1, slot, y_products[:, None])
        self.clock += 1
        self.age.index_copy_(0, slot, torch.where(accept, self.clock, self.age.index_select(0, slot)[0])[None])
        self.gamma.copy_(torch.where(accept, ys / torch.dot(y, y), self.gamma))
        self.head.copy_(torch.where(accept, (slot + 1) % self.s.shape[0], slot))

    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g from the compact representation; small matrices in time order and float64."""
        order = torch.argsort(self.age)  # oldest first; empty slots (age -1) before all
        valid = (self.age >= 0)[order]
        both = valid[:, None] & valid[None, :]
        eye = torch.eye(len(order), dtype=torch.float64, device=g.device)
        sy = self.sy[order][:, order].double()
        r = torch.where(both, torch.triu(sy), eye)  # empty slots: identity rows, no contribution
        d = torch.diag(torch.where(valid, torch.diagonal(sy), 0.0))
        yy = torch.where(both, self.yy[order][:, order].double(), 0.0)
        gamma = self.gamma.double()
        s_g, y_g = (self.s @ g)[order].double(), (self.y @ g)[order].double()
        p = torch.linalg.solve_triangular(r, s_g[:, None], upper=True)
        u = torch.linalg.solve_triangular(r.T, (d + gamma * yy) @ p - gamma * y_g[:, None], upper=False)
        unsorted_p = torch.zeros_like(p).index_copy_(0, order, p)[:, 0].float()
        unsorted_u = torch.zeros_like(u).index_copy_(0, order, u)[:, 0].float()
        hessian_g = self.gamma * g + self.s.T @ unsorted_u - self.gamma * (self.y.T @ unsorted_p)
        return hessian_g.neg_()

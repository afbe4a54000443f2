"""Multinomial logistic regression in numpy: the few-shot head (pure).

Minimises ``C * sum(cross-entropy) + |W|^2 / 2`` (the convention of
scikit-learn's ``C``; the bias is not penalised) with L-BFGS, so it needs
neither scikit-learn nor scipy on the Pi.  With a few examples per class
in 1024 dimensions the classes are separable, and a large ``C`` (weak
penalty) gives the largest-margin-like solution that few-shot work favours;
the iteration cap, not convergence, bounds the cost on big stores.

Cost per iteration is two (N, D) x (D, C) products: about 0.1 ms at
100 rows and 10 classes on one x86 core, 10 ms at 10k rows.  A refit that
starts from the previous weights (``warm``) needs a fraction of the
iterations of a cold one after a single add.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

C_DEFAULT = 100.0
MAX_ITER = 300
HISTORY = 10  # L-BFGS memory: pairs of (step, gradient change)
TOLERANCE = 1e-4  # on the largest gradient component, relative to C


@dataclass(frozen=True)
class LogReg:
    """Weights of a fitted model over ``labels`` (its column order)."""

    labels: tuple[str, ...]
    weights: np.ndarray  # float32 (D, C)
    bias: np.ndarray  # float32 (C,)
    iterations: int = 0

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Logits: (D,) -> (C,), or (N, D) -> (N, C)."""
        return features @ self.weights + self.bias


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit(
    features: np.ndarray,
    labels: list[str] | tuple[str, ...] | np.ndarray,
    *,
    c: float = C_DEFAULT,
    max_iter: int = MAX_ITER,
    warm: LogReg | None = None,
) -> LogReg:
    """Fit on rows ``features`` (N, D) labelled ``labels[i]``; columns in sorted label order."""
    classes = tuple(sorted(set(str(label) for label in labels)))
    n, dim = features.shape
    k = len(classes)
    if n == 0 or k == 0:
        raise ValueError("logistic regression needs at least one example")
    index = {label: i for i, label in enumerate(classes)}
    y = np.array([index[str(label)] for label in labels])
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    x = np.ascontiguousarray(features, dtype=np.float64)
    w0 = np.zeros((dim, k))
    b0 = np.zeros(k)
    if warm is not None and warm.weights.shape[0] == dim:
        for j, label in enumerate(warm.labels):
            if label in index:
                w0[:, index[label]] = warm.weights[:, j]
                b0[index[label]] = warm.bias[j]
    penalty = 1.0 / c  # the same minimum as C * loss + |W|^2 / 2, better scaled

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w = theta[: dim * k].reshape(dim, k)
        z = x @ w + theta[dim * k :]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        total = e.sum(axis=1, keepdims=True)
        loss = float(np.log(total[:, 0]).sum() - (z * onehot).sum()) + 0.5 * penalty * float((w * w).sum())
        g = e / total - onehot
        grad_w = x.T @ g + penalty * w
        return loss, np.concatenate([grad_w.ravel(), g.sum(axis=0)])

    if k == 1:  # one class: nothing to separate
        return LogReg(classes, np.zeros((dim, 1), np.float32), np.zeros(1, np.float32), 0)
    theta, iterations = lbfgs(loss_and_grad, np.concatenate([w0.ravel(), b0]), max_iter, TOLERANCE)
    return LogReg(
        classes,
        theta[: dim * k].reshape(dim, k).astype(np.float32),
        theta[dim * k :].astype(np.float32),
        iterations,
    )


def lbfgs(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    max_iter: int,
    tolerance: float,
) -> tuple[np.ndarray, int]:
    """Minimise a smooth function: L-BFGS two-loop recursion, backtracking (Armijo) line search."""
    x = x0.copy()
    f, g = fun(x)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []  # (s, y, 1 / y.s)
    iteration = 0
    for iteration in range(1, max_iter + 1):
        if np.abs(g).max() < tolerance:
            return x, iteration - 1
        d = -_two_loop(g, steps)
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: forget the history
            steps.clear()
            d, slope = -g / max(1.0, float(np.linalg.norm(g))), -float(g @ g) / max(1.0, float(np.linalg.norm(g)))
        t = 1.0
        while True:
            x_new = x + t * d
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * t * slope or t < 1e-8:
                break
            t *= 0.5
        s, yk = x_new - x, g_new - g
        sy = float(s @ yk)
        if sy > 1e-10:
            steps.append((s, yk, 1.0 / sy))
            if len(steps) > HISTORY:
                steps.pop(0)
        x, f, g = x_new, f_new, g_new
    return x, iteration


def _two_loop(g: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """H @ g for the L-BFGS inverse-Hessian estimate from the stored steps."""
    q = g.copy()
    alphas = []
    for s, y, rho in reversed(steps):
        a = rho * float(s @ q)
        q -= a * y
        alphas.append(a)
    if steps:
        s, y, _ = steps[-1]
        q *= float(s @ y) / float(y @ y)
    else:
        q /= max(1.0, float(np.linalg.norm(g)))
    for (s, y, rho), a in zip(steps, reversed(alphas), strict=True):
        q += s * (a - rho * float(y @ q))
    return q

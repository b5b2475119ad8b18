"""The strong-Wolfe line search of lepton.optim.LBFGS (Nocedal & Wright, Numerical Optimization,
2nd ed., algorithms 3.5 and 3.6, with cubic interpolation, eq. 3.59), in the variant torch's LBFGS
uses, so that both take the same steps.

Along a direction d from x, phi(t) = f(x + t d) with phi'(t) = g(x + t d)·d. A step t satisfies the
strong Wolfe conditions when
    phi(t) <= phi(0) + c1 t phi'(0)        (sufficient decrease)
    |phi'(t)| <= c2 |phi'(0)|               (curvature).
The search first walks t up (extrapolating by cubic interpolation within [t + 0.01 (t - t_prev),
10 t]) until a point satisfies both or an interval is known to hold one, then shrinks that interval
("zoom") by safeguarded cubic interpolation.
"""

import math
from collections import namedtuple

from lepton.optim.optimizer import dot

# one evaluation of phi: the step, the loss, the flat gradient and the directional derivative
Point = namedtuple("Point", "t f g gtd")


def cubic_minimum(a, b, bounds=None):
    """The minimiser of the cubic through points a and b (values and slopes), clamped to bounds
    (default: the interval between a.t and b.t); the bounds' midpoint when the cubic has no
    minimum."""
    low, high = bounds if bounds is not None else sorted((a.t, b.t))
    d1 = a.gtd + b.gtd - 3 * (a.f - b.f) / (a.t - b.t)
    disc = d1 * d1 - a.gtd * b.gtd
    if disc < 0:
        return (low + high) / 2.0
    # Nocedal & Wright's formula, written from the endpoint farther along the line
    near, far = (a, b) if a.t <= b.t else (b, a)
    d2 = math.sqrt(disc)
    t = far.t - (far.t - near.t) * ((far.gtd + d2 - d1) / (far.gtd - near.gtd + 2 * d2))
    return min(max(t, low), high)


def strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Searches for a step t along d from the current point (loss f, flat gradient g, slope
    gtd = g·d < 0); evaluate(t) returns (loss, flat gradient) at x + t d. Returns (loss, gradient,
    t, number of evaluations) of the best point found, within max_ls evaluations after the first."""
    d_norm = d.abs().max().item()

    def at(step):
        loss, grad = evaluate(step)
        return Point(step, loss, grad, dot(grad, d))

    origin, new = Point(0.0, f, g, gtd), at(t)
    evals, iters = 1, 0

    def sufficient_decrease(p):
        return p.f <= f + c1 * p.t * gtd

    def curvature(p):
        return abs(p.gtd) <= -c2 * gtd

    # bracketing: walk t up until [prev, new] holds an acceptable point, or new is one
    prev, bracket, done = origin, None, False
    while iters < max_ls:
        if not sufficient_decrease(new) or (iters > 1 and new.f >= prev.f):
            bracket = [prev, new]
            break
        if curvature(new):
            bracket, done = [new], True
            break
        if new.gtd >= 0:
            bracket = [prev, new]
            break
        step = cubic_minimum(prev, new, bounds=(new.t + 0.01 * (new.t - prev.t), new.t * 10))
        prev, new = new, at(step)
        evals += 1
        iters += 1
    if bracket is None:  # out of evaluations
        bracket = [origin, new]

    # zoom: shrink the bracket, keeping at `low` its point with the lower loss
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    insufficient_progress = False
    while not done and iters < max_ls:
        a, b = bracket
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        step = cubic_minimum(a, b)
        left, right = min(a.t, b.t), max(a.t, b.t)
        margin = 0.1 * (right - left)
        if min(right - step, step - left) < margin:  # too close to an end of the bracket
            if insufficient_progress or step >= right or step <= left:
                step = right - margin if abs(step - right) < abs(step - left) else left + margin
                insufficient_progress = False
            else:
                insufficient_progress = True
        else:
            insufficient_progress = False
        new = at(step)
        evals += 1
        iters += 1
        if not sufficient_decrease(new) or new.f >= bracket[low].f:
            bracket[high] = new
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if curvature(new):
                done = True
            elif new.gtd * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = new
    best = bracket[low]
    return best.f, best.g, best.t, evals

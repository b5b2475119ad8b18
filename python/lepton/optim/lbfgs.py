"""L-BFGS (torch.optim.LBFGS; Nocedal & Wright, Numerical Optimization, 2nd ed., algorithm 7.4
and 7.5): a quasi-Newton method that keeps the last `history_size` pairs (s, y) of parameter
steps and gradient changes, and turns the gradient into a search direction with the two-loop
recursion, the inverse Hessian approximated by H0 = (s·y / y·y) I from the newest pair. Every
step(closure) runs up to max_iter iterations (max_eval closure calls), each moving lr along the
direction, or a strong-Wolfe line search's step (line_search_fn="strong_wolfe",
lepton.optim.line_search); it stops early when the gradient, the step or the loss change falls
below tolerance_grad / tolerance_change, and returns the closure's first loss.

The params are treated as one flat vector, so they must share a device and a dtype, and there is
one param group. The state lives on the first param, under torch's keys: func_evals and n_iter
(counts over all steps), d and t (the last direction and step), old_dirs and old_stps (the y and s
history), ro (1 / y·s per pair), H_diag, prev_flat_grad and prev_loss. Differences from torch:
t, ro and H_diag are Python floats (torch has 0-d tensors), and torch's scratch list "al" is not
state.
"""

from lepton._C import cat, zeros
from lepton.autograd import enable_grad, no_grad
from lepton.optim.line_search import strong_wolfe
from lepton.optim.optimizer import Optimizer, check_range, dot


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Invalid {name}: {value} (expected a positive int)")


class LBFGS(Optimizer):
    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        check_range("learning rate", lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        for name, value in (("max_iter", max_iter), ("max_eval", max_eval), ("history_size", history_size)):
            _positive_int(name, value)
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"Invalid line_search_fn: {line_search_fn!r} (only 'strong_wolfe' is supported)")
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, param_group):
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(param_group)

    def _flat_grad(self):
        return cat([zeros(p.numel(), dtype=p.dtype, device=p.device) if p.grad is None else p.grad.reshape(-1)
                    for p in self._params])

    def _move(self, t, d):
        """params += t * d."""
        offset = 0
        for p in self._params:
            p.add_(d.narrow(0, offset, p.numel()).view(p.shape), alpha=t)
            offset += p.numel()

    def _evaluate(self, closure):
        with enable_grad():
            loss = closure()
        return loss, float(loss), self._flat_grad()

    def _direction(self, g, dirs, stps, ro, h_diag):
        """-H g by the two-loop recursion over the (s, y) history, oldest pair first in the lists."""
        q = g.neg()
        alphas = []
        for s, y, rho in zip(reversed(stps), reversed(dirs), reversed(ro)):
            alphas.append(rho * dot(s, q))
            q.add_(y, alpha=-alphas[-1])
        r = q.mul_(h_diag)
        for s, y, rho, alpha in zip(stps, dirs, ro, reversed(alphas)):
            r.add_(s, alpha=alpha - rho * dot(y, r))
        return r

    def step(self, closure):
        """Runs up to max_iter L-BFGS iterations on closure() (which recomputes the loss and its
        gradients) and returns the loss of its first call."""
        with no_grad():
            return self._run(closure)

    def _run(self, closure):
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        first_loss, loss, g = self._evaluate(closure)
        evals = 1
        state["func_evals"] += 1
        if g.abs().max().item() <= tolerance_grad:
            return first_loss

        # the history is rebuilt as new lists, so that a state_dict taken earlier stays as it was
        d, t = state.get("d"), state.get("t")
        dirs, stps, ro = list(state.get("old_dirs", [])), list(state.get("old_stps", [])), list(state.get("ro", []))
        ro = [float(r) for r in ro]
        h_diag = float(state.get("H_diag", 1.0))
        prev_g, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        for iteration in range(1, max_iter + 1):
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, dirs, stps, ro, h_diag = g.neg(), [], [], [], 1.0
            else:
                y, s = g - prev_g, d * float(t)
                ys = dot(y, s)
                if ys > 1e-10:  # keep the pair only if it has positive curvature
                    if len(dirs) == group["history_size"]:
                        dirs, stps, ro = dirs[1:], stps[1:], ro[1:]
                    dirs, stps, ro = dirs + [y], stps + [s], ro + [1.0 / ys]
                    h_diag = ys / dot(y, y)
                d = self._direction(g, dirs, stps, ro, h_diag)
            prev_g, prev_loss = g, loss

            t = min(1.0, 1.0 / g.abs().sum().item()) * lr if state["n_iter"] == 1 else lr
            gtd = dot(g, d)
            if gtd > -tolerance_change:  # not a descent direction any more
                break

            new_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                start = [p.clone() for p in self._params]

                def along(step):
                    self._move(step, d)
                    _, value, grad = self._evaluate(closure)
                    for p, p0 in zip(self._params, start):
                        p.copy_(p0)
                    return value, grad

                loss, g, t, new_evals = strong_wolfe(along, t, d, loss, g, gtd, max_ls=max_eval - evals)
                self._move(t, d)
                converged = g.abs().max().item() <= tolerance_grad
            else:
                self._move(t, d)
                converged = False
                if iteration != max_iter:  # the last iteration's loss would be recomputed by the next step
                    _, loss, g = self._evaluate(closure)
                    converged = g.abs().max().item() <= tolerance_grad
                    new_evals = 1
            evals += new_evals
            state["func_evals"] += new_evals

            if iteration == max_iter or evals >= max_eval or converged:
                break
            if (d * t).abs().max().item() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=dirs, old_stps=stps, ro=ro, H_diag=h_diag, prev_flat_grad=prev_g,
                     prev_loss=prev_loss)
        return first_loss


__all__ = ["LBFGS"]

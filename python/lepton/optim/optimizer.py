"""Optimizer: the base of lepton.optim, with torch.optim.Optimizer's param_groups, state and
state_dict format ({"state": {param index: {...}}, "param_groups": [{..., "params": [indices]}]}).
Params come as tensors, as dicts of per-group options, or as (name, tensor) pairs (e.g.
model.named_parameters()), whose names the group keeps under "param_names", as torch does.

Differences from torch: state["step"] is a Python int (torch keeps a 0-d tensor; a tensor
step is accepted by load_state_dict), and load_state_dict copies the state tensors, so a
loaded optimizer never shares memory with the one that saved.

Master weights (SGD, Adam, AdamW; torch has no equivalent option): with the group option
`master_weights=True` (the default), a float16 or bfloat16 param gets a float32 copy,
state["master_weight"], made from the param at its first step. Every step updates that copy
from the 16-bit grad (the optimizer's state buffers are float32 too) and writes it, rounded to
nearest even, back to the param in the same kernel pass, so that updates smaller than the
param's rounding step accumulate instead of being lost. The master is the weight being
trained: a param changed outside the optimizer (e.g. a model checkpoint loaded after the
optimizer's first step) must also be loaded into the optimizer's state, or the next step
overwrites it. `master_weights=False` steps the 16-bit param directly (float32 arithmetic,
one rounding per step, 16-bit state). The masters are saved in state_dict like any state.
"""

from lepton._C import Tensor, dtype
from lepton.autograd import enable_grad, no_grad


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = {}  # param -> dict of its state (tensors and "step")
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of Tensors or dicts, "
                            "but got a Tensor")
        groups = _ordered(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group):
        """Adds a group of params with its own options (the missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else _ordered(params)
        named = [p for p in params if isinstance(p, tuple)]
        if named:  # (name, param) pairs, as from model.named_parameters()
            if len(named) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some param names are missing")
            group["param_names"] = [name for name, _ in named]
            params = [p for _, p in named]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, but one of the params is {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        group["params"] = params
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.zero_()

    def step(self, closure=None):
        """Runs closure() (with grad enabled) if given, updates every param that has a grad."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                if params:
                    self._step_group(group, params)
        return loss

    def _step_group(self, group, params):
        raise NotImplementedError

    def state_dict(self):
        """{"state": {index: state}, "param_groups": [...]}; params are numbered across groups in order."""
        index, groups = {}, []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for mine, saved in zip(self.param_groups, groups):
            if len(mine["params"]) != len(saved["params"]):
                raise ValueError("loaded state dict contains a parameter group that doesn't match the size of "
                                 "optimizer's group")
        by_index = {}
        for mine, saved in zip(self.param_groups, groups):
            by_index.update(zip(saved["params"], mine["params"]))
            mine.update({k: v for k, v in saved.items() if k != "params"})
        group_of = {id(p): g for g in self.param_groups for p in g["params"]}
        self.state = {}
        for i, s in state_dict["state"].items():
            p = by_index[int(i)]
            self.state[p] = {k: _load_value(k, v, p, state_dtype(group_of[id(p)], p)) for k, v in s.items()}


def _ordered(params):
    if isinstance(params, set):
        raise TypeError("optimizer parameters need to be organized in ordered collections, but the ordering of "
                        "tensors in sets will change between runs; use a list instead")
    return list(params)


def _load_value(key, value, param, floating_dtype):
    if key == "step":
        return int(value.item()) if isinstance(value, Tensor) else int(value)
    if isinstance(value, Tensor):  # floating state takes the dtype its param's steps use
        target = floating_dtype if value.is_floating_point() else value.dtype
        return value.to(param.device, target, copy=True)
    if isinstance(value, (list, tuple)):  # e.g. LBFGS's history of steps
        return type(value)(_load_value(None, v, param, floating_dtype) for v in value)
    return value


def uses_master(group, param):
    return group.get("master_weights", False) and param.dtype.name in ("float16", "bfloat16")


def state_dtype(group, param):
    """The dtype of param's state buffers: float32 when it has a master weight."""
    return dtype.float32 if uses_master(group, param) else param.dtype


def masters_of(optimizer, group, params):
    """The float32 master weights of a list of one dtype (made on first use), or [] if it has none."""
    if not uses_master(group, params[0]):
        return []
    states = [optimizer.state.setdefault(p, {}) for p in params]
    for p, state in zip(params, states):
        if "master_weight" not in state:
            state["master_weight"] = p.detach().to(p.device, dtype.float32, copy=True)
    return [state["master_weight"] for state in states]


def by_device_and_dtype(params):
    """The params split into lists of one device and dtype each, in order (one fused call per list)."""
    lists = {}
    for p in params:
        lists.setdefault((str(p.device), p.dtype.name), []).append(p)
    return list(lists.values())


def grads_of(params):
    return [p.grad.contiguous() for p in params]


def check_range(name, value, low=0.0, high=None):
    if not low <= value or (high is not None and not value < high):
        raise ValueError(f"Invalid {name}: {value}")


def torch_options(name, differentiable=False, **flags):
    """torch's implementation switches (foreach, fused, capturable, differentiable: the ones
    optimizer `name` has in torch), checked, as group options under torch's names. foreach and
    fused choose among torch's kernels; Lepton has one step per optimizer (the multi-tensor fused
    kernel where there is one), which every value of theirs selects. capturable (CUDA-graph
    capture) changes nothing, as Lepton keeps step counts on the host. differentiable=True,
    autograd through the step, cannot work: steps update params in place, recording no graph."""
    if flags.get("fused") and flags.get("foreach"):
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    if differentiable:
        raise NotImplementedError(f"lepton.optim.{name}: differentiable=True (autograd through the optimizer "
                                  "step) is not supported; steps run in place without recording a graph")
    return dict(flags, differentiable=False)


def step_grad(p, group):
    """p's gradient as the composed optimizers step on it: negated for maximize, with L2 weight decay
    added, or (decoupled_weight_decay, AdamW-style) applied to p itself at lr·weight_decay."""
    grad = -p.grad if group["maximize"] else p.grad
    decay = group["weight_decay"]
    if decay != 0:
        if group.get("decoupled_weight_decay"):
            p.mul_(1 - group["lr"] * decay)
        else:
            grad = grad.add(p, alpha=decay)
    return grad


def lerp_(a, b, weight):
    """a.lerp_(b, weight) with torch's formula."""
    if weight < 0.5:
        return a.add_((b - a) * weight)
    return a.copy_(b - (b - a) * (1 - weight))


def dot(a, b):
    """The dot product of two 1-d tensors, as a Python float."""
    return (a * b).sum().item()


__all__ = ["Optimizer", "required"]

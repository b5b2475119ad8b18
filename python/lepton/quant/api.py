"""quantize_dynamic and the save/load format of quantised models."""

from lepton import nn
from lepton.nn.fusion import clone_module
from lepton.quant.modules import QuantizedConv2d, QuantizedLinear, quantize_per_channel
from lepton.quant.rnn import QUANTIZED as _RECURRENT

__all__ = ["quantize_dynamic", "quantize_per_channel", "state_dict", "load"]

FORMAT = "lepton-quant/1"


def _swap(child, weight_only):
    """(replacement, kind) for a quantisable layer, else (None, None)."""
    if type(child) is nn.Linear:
        return QuantizedLinear.from_float(child, weight_only), "linear"
    if type(child) is nn.Conv2d and child.groups == 1:
        return QuantizedConv2d.from_float(child, weight_only), "conv2d"
    if type(child) in _RECURRENT:
        return _RECURRENT[type(child)].from_float(child, weight_only), type(child).__name__.lower()
    return None, None


def _quantize(module, weight_only, fuse_relu, done, only, prefix=""):
    names = list(module._modules)
    for i, name in enumerate(names):
        child = module._modules[name]
        if child is None:
            continue
        path = f"{prefix}{name}"
        chosen = only is None or path in only or type(child) in only
        new, kind = _swap(child, weight_only) if chosen else (None, None)
        if new is None:
            _quantize(child, weight_only, fuse_relu, done, only, path + ".")
            continue
        done[path] = kind
        # Sequential's Linear/Conv2d -> ReLU: the ReLU runs in the GEMM's epilogue
        nxt = module._modules.get(names[i + 1]) if i + 1 < len(names) else None
        if fuse_relu and kind in ("linear", "conv2d") and isinstance(module, nn.Sequential) and type(nxt) is nn.ReLU:
            new.relu = True
            module._modules[names[i + 1]] = nn.Identity()  # in place: a Sequential runs in this order
            done[path] += "+relu"
        module._modules[name] = new


def quantize_dynamic(model, qconfig_spec=None, dtype="int8", inplace=False, weight_only=False, fuse_relu=True):
    """A copy of model (or model itself with inplace=True) whose nn.Linear, groups=1 nn.Conv2d and
    recurrent layers (nn.RNN/LSTM/GRU and their cells: the input and hidden projections) hold int8
    weights with per-output-channel scales and quantise their inputs per row at run time.
    qconfig_spec: limits the swap to these modules, as in torch: a set (or a dict's keys) of module
    names (as in named_modules) and/or module types, e.g. {nn.Linear, nn.LSTM}.
    weight_only=True keeps int8 weights but computes in float32. In a Sequential, a ReLU right
    after a quantised Linear/Conv2d is fused into its GEMM epilogue (fuse_relu=False keeps it apart)."""
    if dtype not in ("int8", "qint8"):
        raise ValueError(f"quantize_dynamic: only dtype='int8' is supported, got {dtype!r}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"quantize_dynamic: expected an nn.Module, got {type(model).__name__}")
    if qconfig_spec is not None and not isinstance(qconfig_spec, (set, list, tuple, dict)):
        raise TypeError("quantize_dynamic: qconfig_spec must be a set of module names or types")
    only = None if qconfig_spec is None else set(qconfig_spec)
    if only is not None:
        bad = [k for k in only if not isinstance(k, str) and not (isinstance(k, type) and issubclass(k, nn.Module))]
        if bad:
            raise TypeError(f"quantize_dynamic: qconfig_spec holds module names and types, got {bad[0]!r}")
        missing = sorted(k for k in only if isinstance(k, str) and k not in dict(model.named_modules()))
        if missing:
            raise ValueError(f"quantize_dynamic: qconfig_spec names modules the model does not have: {missing}")
    if not inplace:
        model = clone_module(model)
    done = {}
    if isinstance(model, (nn.Linear, nn.Conv2d)) or type(model) in _RECURRENT:
        raise ValueError("quantize_dynamic: wrap a single layer in nn.Sequential to quantise it")
    _quantize(model, weight_only, fuse_relu, done, only)
    model._quant_config = {"dtype": "int8", "weight_only": bool(weight_only), "modules": done}
    model.eval()
    return model


def state_dict(model):
    """What lepton.save should write for a quantised model: its tensors (int8 weights, scales,
    biases) and, as JSON, which layers were quantised and how."""
    config = getattr(model, "_quant_config", None)
    if config is None:
        raise ValueError("quant.state_dict: the model was not made by lepton.quant.quantize_dynamic")
    return {"format": FORMAT, "quant": config, "model": model.state_dict()}


def load(model, state):
    """Rebuilds a quantised model from a float model of the same architecture (its weights are
    replaced) and a quant.state_dict (e.g. from lepton.load(path))."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"quant.load: not a quantised-model state (expected format '{FORMAT}')")
    config = state["quant"]
    layers = dict(model.named_modules())
    names = {k.split("+")[0] for k in config["modules"]} & set(layers)  # a missing one fails the match below
    fused = any(v.endswith("+relu") for v in config["modules"].values())
    q = quantize_dynamic(model, qconfig_spec=names, weight_only=config["weight_only"], fuse_relu=fused)
    if q._quant_config["modules"] != config["modules"]:
        raise ValueError(f"quant.load: the model's layers {sorted(q._quant_config['modules'])} do not match the "
                         f"saved quantised layers {sorted(config['modules'])}")
    q.load_state_dict(state["model"])
    return q

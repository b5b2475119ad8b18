"""lepton.amp.GradScaler with torch.amp.GradScaler's semantics: the loss is multiplied by a
scale before backward so float16 gradients do not underflow; unscale_ divides the gradients by
it and checks them for inf/NaN in the same fused pass (_C._amp_foreach_non_finite_check_and_unscale_,
one call per device and dtype); step skips optimizer.step() when any was found; update backs the
scale off after such a step and grows it after growth_interval clean ones. The scale and the
growth tracker live on the gradients' device, so nothing but step's found_inf check reads back."""

import warnings
from collections import defaultdict
from enum import Enum

from lepton import _C
from lepton._C import Tensor

__all__ = ["GradScaler"]


class OptState(Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _fresh_state():
    return {"stage": OptState.READY, "found_inf_per_device": {}}


class GradScaler:
    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        self._device = device
        self._enabled = bool(enabled)
        if self._enabled and device == "cuda":
            from lepton import cuda

            if not cuda.is_available():
                warnings.warn("lepton.amp.GradScaler is enabled, but CUDA is not available. Disabling.")
                self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise ValueError(f"GradScaler: growth_factor must be > 1.0, got {growth_factor}")
            if backoff_factor >= 1.0:
                raise ValueError(f"GradScaler: backoff_factor must be < 1.0, got {backoff_factor}")
            if not (isinstance(growth_interval, int) and growth_interval > 0):
                raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval}")
            self._init_scale = float(init_scale)
            self._scale = None  # 0-d float32, made on the device of the first outputs scaled
            self._growth_factor = float(growth_factor)
            self._backoff_factor = float(backoff_factor)
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            self._growth_tracker = None  # 0-d int32
            self._per_optimizer_states = defaultdict(_fresh_state)

    def _lazy_init_scale_growth_tracker(self, device):
        self._scale = _C.full([], self._init_scale, dtype=_C.dtype.float32, device=device)
        self._growth_tracker = _C.full([], self._init_growth_tracker, dtype=_C.dtype.int32, device=device)

    def scale(self, outputs):
        """outputs (a tensor, or nested lists/tuples of them) times the current scale."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init_scale_growth_tracker(outputs.device)
            return outputs * self._scale.to(outputs.device)
        if isinstance(outputs, (list, tuple)):
            scaled = [self.scale(o) for o in outputs]
            return type(outputs)(scaled) if isinstance(outputs, tuple) else scaled
        raise ValueError("outputs must be a Tensor or an iterable of Tensors")

    def _unscale_grads_(self, optimizer, inv_scale, found_inf, allow_fp16):
        groups = defaultdict(list)  # (device, dtype) -> grads
        for group in optimizer.param_groups:
            for param in group["params"]:
                grad = param.grad
                if grad is None:
                    continue
                if not allow_fp16 and grad.dtype == _C.dtype.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                groups[(str(grad.device), grad.dtype)].append(grad)
        found_inf_per_device = {}
        for (device, _), grads in groups.items():
            if device not in found_inf_per_device:
                found_inf_per_device[device] = found_inf.to(device, copy=True)
            _C._amp_foreach_non_finite_check_and_unscale_(grads, found_inf_per_device[device], inv_scale.to(device))
        return found_inf_per_device

    def unscale_(self, optimizer):
        """Divides optimizer's gradients by the scale in place (e.g. before clipping them)."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # torch's rounding: the reciprocal in float64, then float32
        inv_scale = (1.0 / self._scale.double()).float()
        found_inf = _C.full([], 0.0, dtype=_C.dtype.float32, device=self._scale.device)
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, found_inf, False)
        state["stage"] = OptState.UNSCALED

    def step(self, optimizer, *args, **kwargs):
        """unscale_ (unless done already), then optimizer.step() unless a gradient held an inf or NaN."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if not state["found_inf_per_device"]:
            raise RuntimeError("No inf checks were recorded for this optimizer.")
        retval = None
        if not sum(v.item() for v in state["found_inf_per_device"].values()):
            retval = optimizer.step(*args, **kwargs)
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale=None):
        """Backs the scale off if this iteration's steps found an inf/NaN, else counts towards growth;
        or sets it to new_scale (a float or a one-element float32 tensor)."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("update")
        if new_scale is not None:
            if isinstance(new_scale, float):
                self._scale.fill_(new_scale)
            else:
                if not (isinstance(new_scale, Tensor) and new_scale.numel() == 1
                        and new_scale.dtype == _C.dtype.float32 and not new_scale.requires_grad):
                    raise ValueError("new_scale should be a float or a 1-element float32 tensor with requires_grad=False.")
                self._scale.copy_(new_scale)
        else:
            found_infs = [f.to(self._scale.device) for state in self._per_optimizer_states.values()
                          for f in state["found_inf_per_device"].values()]
            if not found_infs:
                raise RuntimeError("No inf checks were recorded prior to update.")
            combined = found_infs[0]
            for f in found_infs[1:]:
                combined = combined + f
            _C._amp_update_scale_(self._scale, self._growth_tracker, combined, self._growth_factor,
                                  self._backoff_factor, self._growth_interval)
        self._per_optimizer_states = defaultdict(_fresh_state)

    def _check_scale_growth_tracker(self, funcname):
        if self._scale is None:
            raise RuntimeError(f"Attempted {funcname} but the scale is not initialized: call scale() first "
                               "(it creates the scale on the loss's device).")

    def get_scale(self):
        """The current scale as a float (1.0 when disabled); reading it waits for the device."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self):
        return self._growth_factor

    def set_growth_factor(self, new_factor):
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self):
        return self._backoff_factor

    def set_backoff_factor(self, new_factor):
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self):
        return self._growth_interval

    def set_growth_interval(self, new_interval):
        self._growth_interval = new_interval

    def _get_growth_tracker(self):
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.item())

    def is_enabled(self):
        return self._enabled

    def state_dict(self):
        """{"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} ({} when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict):
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved from a disabled "
                               "instance of GradScaler.")
        self._init_scale = float(state_dict["scale"])
        if self._scale is not None:
            self._scale.fill_(self._init_scale)
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._growth_tracker is not None:
            self._growth_tracker.fill_(self._init_growth_tracker)

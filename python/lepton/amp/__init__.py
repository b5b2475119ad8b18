"""Mixed precision, as torch.amp: `autocast` runs matrix products, convolutions and attention in
float16/bfloat16 and the ops that need range or precision (losses; on CUDA also softmax,
layer_norm, sum and the exp/log family) in float32; `GradScaler` scales float16 losses so small
gradients survive, and skips the optimizer step when the unscaled gradients hold an inf or NaN."""

from lepton.amp.autocast_mode import autocast, get_autocast_dtype, is_autocast_enabled
from lepton.amp.grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype"]

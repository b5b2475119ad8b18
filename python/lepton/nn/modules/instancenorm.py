"""InstanceNorm1d / 2d / 3d: per-sample, per-channel normalisation over the spatial dims (torch's
defaults: affine=False, track_running_stats=False; the same parameter and buffer names as BatchNorm)."""

import warnings

from lepton.nn import functional as F
from lepton.nn.modules.normalization import _NormBase


class _InstanceNorm(_NormBase):
    _spatial_dims = 0

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False, track_running_stats=False, device=None,
                 dtype=None, *, bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input):
        unbatched_dims = self._spatial_dims + 1
        if input.dim() not in (unbatched_dims, unbatched_dims + 1):
            raise ValueError(f"{type(self).__name__}: expected {unbatched_dims}D or {unbatched_dims + 1}D input "
                             f"(got {input.dim()}D input)")
        feature_dim = input.dim() - unbatched_dims
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"{type(self).__name__}: expected input's size at dim={feature_dim} to match "
                                 f"num_features ({self.num_features}), but got: {input.shape[feature_dim]}.")
            warnings.warn(f"input's size at dim={feature_dim} does not match num_features. You can silence this "
                          "warning by not passing in num_features, which is not used because affine=False",
                          stacklevel=2)
        unbatched = input.dim() == unbatched_dims
        out = F.instance_norm(input.unsqueeze(0) if unbatched else input, self.running_mean, self.running_var,
                              self.weight, self.bias, self.training or not self.track_running_stats,
                              0.0 if self.momentum is None else self.momentum, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance norm of [N, C, L] (or [C, L]) input."""

    _spatial_dims = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance norm of [N, C, H, W] (or [C, H, W]) input."""

    _spatial_dims = 2


class InstanceNorm3d(_InstanceNorm):
    """Instance norm of [N, C, D, H, W] (or [C, D, H, W]) input."""

    _spatial_dims = 3

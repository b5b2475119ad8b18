"""torch.cuda.amp (torch's older spelling): autocast and GradScaler with the device preset to CUDA."""

from lepton.amp.autocast_mode import autocast as _autocast
from lepton.amp.grad_scaler import GradScaler as _GradScaler


class autocast(_autocast):  # noqa: N801  (torch's name)
    def __init__(self, enabled=True, dtype=None, cache_enabled=True):
        super().__init__("cuda", dtype=dtype, enabled=enabled)


class GradScaler(_GradScaler):
    def __init__(self, init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
                 enabled=True):
        super().__init__("cuda", init_scale=init_scale, growth_factor=growth_factor, backoff_factor=backoff_factor,
                         growth_interval=growth_interval, enabled=enabled)

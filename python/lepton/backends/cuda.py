"""torch.backends.cuda: matmul precision flags and the scaled-dot-product-attention switches.

Lepton's scaled_dot_product_attention always uses its own flash kernel where one exists (else
the untiled one); the enable_* switches are recorded and reported back."""

import contextlib


class _MatmulFlags:
    """allow_tf32 and the reduced-precision-reduction flags: recorded; float32 GEMMs stay float32."""

    def __init__(self):
        self.allow_tf32 = False
        self.allow_fp16_reduced_precision_reduction = True
        self.allow_bf16_reduced_precision_reduction = True


matmul = _MatmulFlags()
_sdp = {"flash": True, "mem_efficient": True, "math": True, "cudnn": True}


def is_built():
    from lepton import _C

    return _C._cuda.is_compiled()


def _switch(name):
    def enable(enabled):
        _sdp[name] = bool(enabled)

    def query():
        return _sdp[name]

    return enable, query


enable_flash_sdp, flash_sdp_enabled = _switch("flash")
enable_mem_efficient_sdp, mem_efficient_sdp_enabled = _switch("mem_efficient")
enable_math_sdp, math_sdp_enabled = _switch("math")
enable_cudnn_sdp, cudnn_sdp_enabled = _switch("cudnn")


@contextlib.contextmanager
def sdp_kernel(enable_flash=True, enable_math=True, enable_mem_efficient=True, enable_cudnn=True):
    saved = dict(_sdp)
    _sdp.update(flash=enable_flash, math=enable_math, mem_efficient=enable_mem_efficient, cudnn=enable_cudnn)
    try:
        yield
    finally:
        _sdp.update(saved)

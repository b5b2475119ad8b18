"""Memory-bound kernels: elementwise add/mul/gelu, a full sum, a broadcast add and a strided
transpose-copy, against numpy and torch on the same machine and thread count."""


import numpy as np

import lepton
from harness import Suite, main as bench_main


def run(device="cpu", threads=None, quick=False):
    torch = None
    try:
        import torch
    except ImportError:
        pass
    if threads:
        lepton.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
    n = (1 << 22) if quick else (1 << 24)  # 16M floats
    side = 2048 if quick else 4096
    cuda = device.startswith("cuda")
    sync = lepton.cuda.synchronize if cuda else None
    tsync = (torch.cuda.synchronize if cuda else None) if torch is not None else None

    rng = np.random.default_rng(0)
    a_np = rng.standard_normal(n, dtype=np.float32)
    b_np = rng.standard_normal(n, dtype=np.float32)
    m_np = rng.standard_normal((side, side), dtype=np.float32)
    v_np = rng.standard_normal(side, dtype=np.float32)
    # Each framework works on memory it allocated itself, as a user's tensors would be.
    a, b = (lepton.from_numpy(x).to(device, copy=True) for x in (a_np, b_np))
    m, v = (lepton.from_numpy(x).to(device, copy=True) for x in (m_np, v_np))
    if torch is not None:
        tdev = "cuda" if cuda else "cpu"
        ta, tb = (torch.from_numpy(x).to(tdev, copy=True) for x in (a_np, b_np))
        tm, tv = (torch.from_numpy(x).to(tdev, copy=True) for x in (m_np, v_np))
    gelu_np = None
    if not cuda:
        from math import sqrt

        def gelu_np():  # numpy has no erf; the tanh form is the closest it offers
            return 0.5 * a_np * (1 + np.tanh(sqrt(2 / np.pi) * (a_np + 0.044715 * a_np ** 3)))

    suite = Suite(f"elementwise ({device}, threads={lepton.get_num_threads()})", "GB/s")
    suite.header()
    f4 = 4

    def entry(name, nbytes, fn, np_fn, torch_fn):
        refs = {}
        if np_fn is not None and not cuda:
            refs["numpy"] = np_fn
        if torch is not None:
            refs["torch"] = (lambda: (torch_fn(), tsync())) if tsync else torch_fn
        suite.add(name, nbytes, fn, refs, sync=sync)

    entry(f"add {n>>20}M", 3 * n * f4, lambda: a + b, lambda: a_np + b_np,
          (lambda: ta + tb) if torch else None)
    entry(f"mul {n>>20}M", 3 * n * f4, lambda: a * b, lambda: a_np * b_np,
          (lambda: ta * tb) if torch else None)
    entry(f"gelu {n>>20}M", 2 * n * f4, lambda: a.gelu(), gelu_np,
          (lambda: torch.nn.functional.gelu(ta)) if torch else None)
    entry(f"sum {n>>20}M", n * f4, lambda: a.sum(), lambda: a_np.sum(),
          (lambda: ta.sum()) if torch else None)
    entry(f"broadcast add {side}x{side}+{side}", 2 * side * side * f4, lambda: m + v, lambda: m_np + v_np,
          (lambda: tm + tv) if torch else None)
    entry(f"transpose copy {side}x{side}", 2 * side * side * f4, lambda: m.T.contiguous(),
          lambda: np.ascontiguousarray(m_np.T), (lambda: tm.T.contiguous()) if torch else None)
    return suite



if __name__ == "__main__":
    bench_main(run, __doc__, "smaller sizes", threads_default=None, device=True)

"""nn.LSTM and nn.GRU training steps against torch on the same thread count (T=200, B=32, I=64,
H=128, float32, time-major): the forward with autograd recording, forward + backward, and the
backward alone (the difference of the two medians). Each row also times Lepton with the step's
elementwise part composed of separate ops (one autograd node each), which is what the fused
cells (_C.lstm_cell_fused / gru_cell_fused) replace.

Rates are time steps per second (T per call); ratio = other's time / Lepton's time. With
BENCH_CLOCK=cpu the samples are this process's CPU time instead of wall time: on a loaded shared
machine that is the usable figure at --threads 1 (meaningless at more threads). With as many
threads as cores, run with OMP_WAIT_POLICY=passive: Lepton and torch each have their own OpenMP
runtime, and the workers one leaves spinning after its call take the cores from the other's next.
"""

import os
import time
import types

import numpy as np

import harness
import lepton
from lepton.nn.modules import rnn as lepton_rnn
from harness import Suite, main as bench_main

if os.environ.get("BENCH_CLOCK") == "cpu":
    harness.time = types.SimpleNamespace(perf_counter=time.process_time)


class _ComposedLSTM(lepton_rnn._LSTM):
    """The LSTM step as separate ops: chunk, 3 sigmoid + 2 tanh + 3 mul + 1 add."""

    def step(self, x_t, state, loop):
        w_hh_t, w_hr = loop
        h, c = state
        i, f, g, o = self.addmm(x_t, h, w_hh_t).chunk(4, 1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return (o.sigmoid() * c.tanh(), c)


class _ComposedGRU(lepton_rnn._GRU):
    """The GRU step as separate ops: splits, 2 sigmoid + 1 tanh, adds and muls."""

    def step(self, x_t, state, loop):
        w_hh, b_hh = loop
        h = state[0]
        hidden = h.shape[1]
        x_rz, x_n = x_t.split([2 * hidden, hidden], 1)
        h_rz, h_n = self.linear(h, w_hh, b_hh).split([2 * hidden, hidden], 1)
        r, z = (x_rz + h_rz).sigmoid().chunk(2, 1)
        n = (x_n + r * h_n).tanh()
        return (n + z * (h - n),)


def run(threads=2, quick=False):
    import copy

    import torch

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    T, B, I, H = (50 if quick else 200), 32, 64, 128
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((T, B, I), dtype=np.float32)
    suite = Suite(f"recurrent layers float32 T={T} B={B} I={I} H={H} (cpu, threads={threads})", "steps/s", scale=1)
    suite.header()
    timing = dict(warmup=2, repeat=5 if quick else 9, min_time=0.0)
    for mode, composed_cell in (("LSTM", _ComposedLSTM()), ("GRU", _ComposedGRU())):
        layer = getattr(lepton.nn, mode)(I, H)
        composed = copy.deepcopy(layer)
        composed._cell = composed_cell
        tlayer = getattr(torch.nn, mode)(I, H)
        with torch.no_grad():
            for p, tp in zip(layer.parameters(), tlayer.parameters()):
                tp.copy_(torch.from_numpy(p.detach().numpy().copy()))
        x, tx = lepton.from_numpy(x_np.copy()), torch.from_numpy(x_np.copy())
        params = list(layer.parameters())

        def forward(model):
            return lambda: model(x)[0]

        def train(model):
            return lambda: model(x)[0].sum().backward()

        fns = {
            "forward": (forward(layer), {"torch": lambda: tlayer(tx)[0], "composed": forward(composed)}),
            "fwd+bwd": (train(layer), {"torch": lambda: tlayer(tx)[0].sum().backward(), "composed": train(composed)}),
        }
        rows = {k: suite.add(f"{mode} {k}", T, ours, refs, interleave=True, **timing)
                for k, (ours, refs) in fns.items()}
        for p in params:  # gradients accumulated over the calls: drop them
            p.grad = None
        back = {k: rows["fwd+bwd"]["seconds"][k] - rows["forward"]["seconds"][k] for k in rows["forward"]["seconds"]}
        row = {"name": f"{mode} backward (difference)", "seconds": back,
               "rate": {k: T / v for k, v in back.items()},
               "ratio": {k: v / back["lepton"] for k, v in back.items() if k != "lepton"}}
        suite.rows.append(row)
        suite._print_row(row)
        for k in ("forward", "fwd+bwd"):
            print(f"    {mode} {k} ms: " + "  ".join(f"{n} {v * 1e3:.1f}" for n, v in rows[k]["seconds"].items()))
        print(f"    {mode} backward ms: " + "  ".join(f"{n} {v * 1e3:.1f}" for n, v in back.items()))
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "T=50 and fewer repeats")

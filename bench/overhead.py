"""Python -> C++ call overhead on tiny tensors, where the kernels cost nothing and the framework is all
that is timed: an op call, an op recording a graph node, a small Linear forward+backward, and the
engine's cost per backward node (a 100-node chain run backward with retain_graph). Lepton and torch
side by side, in microseconds per call (ratio = torch time / lepton time, >1: Lepton faster).

--profile prints cProfile's view of the Python side of the Linear step (C++ time shows as the
builtin calls that enter it)."""

import cProfile
import pstats

import lepton
from harness import Suite, main as bench_main

CHAIN = 100


class LatencySuite(Suite):
    """A Suite whose rows read in µs per call (rate = Mcalls/s, so µs = 1/rate)."""

    def add_calls(self, name, per_call, lepton_fn, references, **timing):
        """per_call: how many units (calls, nodes) one fn() performs; rows report µs per unit."""
        return self.add(name, 1e3 * per_call, lepton_fn, references, **timing)

    def header(self):
        print(f"\n## {self.title}  (µs per call; ratio = torch time / lepton time, >1: Lepton faster)")

    def _print_row(self, row):
        times = "  ".join(f"{k} {1 / v:7.3f} µs" for k, v in row["rate"].items())
        ratios = "  ".join(f"vs {k} {v:5.2f}x" for k, v in row["ratio"].items())
        print(f"{row['name']:<44} {times}   {ratios}", flush=True)


def chain(x, n):
    """n multiply nodes on top of x (each one backward node)."""
    y = x
    for _ in range(n):
        y = y * 1.0001
    return y.sum()


def workloads(lib, nn):
    """The same four workloads built from `lib` (lepton or torch)."""
    a, b = lib.ones(1), lib.ones(1)
    g = lib.ones(1, requires_grad=True)
    lin = nn.Linear(32, 32)
    x = lib.ones(1, 32)
    loss = chain(lib.ones(1, requires_grad=True), CHAIN)

    def linear_step():
        lin(x).sum().backward()

    return {
        "a + b (1 element, no grad)": (1, lambda: a + b),
        "a + b (1 element, records a node)": (1, lambda: g + b),
        "Linear(32,32) fwd+bwd, batch 1": (1, linear_step),
        f"backward per node ({CHAIN}-node chain)": (CHAIN, lambda: loss.backward(retain_graph=True)),
    }


def profile(fn, calls=20000):
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(calls):
        fn()
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)


def run(threads=2, quick=False, profile_linear=False):
    import torch

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    ours, theirs = workloads(lepton, lepton.nn), workloads(torch, torch.nn)
    suite = LatencySuite(f"per-call overhead (cpu, threads={threads})", "Mcalls/s")
    suite.header()
    timing = dict(repeat=5 if quick else 9, min_time=0.05 if quick else 0.2)
    for name, (per_call, fn) in ours.items():
        row = suite.add_calls(name, per_call, fn, {"torch": theirs[name][1]}, **timing)
        row["us_per_call"] = {k: 1 / v for k, v in row["rate"].items()}
    if profile_linear:
        print("\ncProfile of lepton's Linear(32,32) fwd+bwd:")
        profile(ours["Linear(32,32) fwd+bwd, batch 1"][1])
    return suite


if __name__ == "__main__":
    import sys

    want_profile = "--profile" in sys.argv
    if want_profile:
        sys.argv.remove("--profile")
    bench_main(lambda **kw: run(profile_linear=want_profile, **kw), __doc__, "fewer, shorter samples",
               threads_default=2)

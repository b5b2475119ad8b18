"""Common benchmark harness: warm-up, median of N timed runs, ratios measured side by side.

Every entry times Lepton and its references (numpy, torch) in the same process, interleaved, so a
noisy machine shifts both; the ratio reported is reference_time / lepton_time (> 1 means Lepton
is faster).
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time


def median_time(fn, *, warmup=2, repeat=7, min_time=0.05, sync=None):
    """Median seconds per call of fn(), each sample looping until it lasts at least min_time."""
    return median_times({"fn": fn}, warmup=warmup, repeat=repeat, min_time=min_time, sync=sync)["fn"]


def median_times(fns, *, warmup=2, repeat=7, min_time=0.05, sync=None):
    """median_time of each of fns ({name: fn}), their samples taken in turn (a b a b ...) so that
    a burst of load on a shared machine hits all of them alike."""
    inner = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        if sync:
            sync()
        # calls per sample, so that short ops are not dominated by timer resolution
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        once = max(time.perf_counter() - start, 1e-7)
        inner[name] = max(1, int(min_time / once))
    samples = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            if sync:
                sync()
            samples[name].append((time.perf_counter() - t0) / inner[name])
    return {name: statistics.median(s) for name, s in samples.items()}


class Suite:
    """Collects rows of {name, metric, lepton, references...} and prints/saves them."""

    def __init__(self, title, metric, scale=1e9):
        self.title = title
        self.metric = metric  # e.g. "GB/s": higher is better
        self.scale = scale  # units of work per unit of metric: 1e9 for GB/s and GFLOP/s, 1 for samples/s
        self.rows = []

    def add(self, name, work, lepton_fn, references, interleave=False, **timing):
        """work: units of `metric` done per call (bytes for GB/s, flops for GFLOP/s). interleave:
        take the samples of Lepton and the references in turn (for long calls on a noisy machine)."""
        if interleave:
            times = median_times({"lepton": lepton_fn, **references}, **timing)
        else:
            times = {"lepton": median_time(lepton_fn, **timing)}
            for ref_name, ref_fn in references.items():
                times[ref_name] = median_time(ref_fn, **timing)
        row = {"name": name, "seconds": times}
        row["rate"] = {k: work / v / self.scale for k, v in times.items()}
        row["ratio"] = {k: v / times["lepton"] for k, v in times.items() if k != "lepton"}
        self.rows.append(row)
        self._print_row(row)
        return row

    def header(self):
        print(f"\n## {self.title}  ({self.metric}; ratio = reference time / lepton time, >1: Lepton faster)")

    def _print_row(self, row):
        rates = "  ".join(f"{k} {v:8.2f}" for k, v in row["rate"].items())
        ratios = "  ".join(f"vs {k} {v:5.2f}x" for k, v in row["ratio"].items())
        print(f"{row['name']:<34} {rates}   {ratios}", flush=True)

    def to_json(self):
        return {"title": self.title, "metric": self.metric, "rows": self.rows}


def environment():
    import lepton

    env = {"python": sys.version.split()[0], "machine": platform.machine(), "lepton": lepton.info()}
    try:
        import torch

        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    import numpy

    env["numpy"] = numpy.__version__
    return env


def save(path, suites):
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"environment": environment(), "suites": [s.to_json() for s in suites]}, f, indent=1)
    print(f"\nwrote {path}")


def main(run, description, quick_help, threads_default=2, device=False):
    """The command line every bench script shares: --threads, --quick, --json (and --device)."""
    p = argparse.ArgumentParser(description=description)
    if device:
        p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=threads_default, help="threads for lepton and torch")
    p.add_argument("--quick", action="store_true", help=quick_help)
    p.add_argument("--json", default=None, help="write results here")
    args = p.parse_args()
    extra = {"device": args.device} if device else {}
    save(args.json, [run(threads=args.threads, quick=args.quick, **extra)])

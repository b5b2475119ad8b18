"""Inference: the int8 GEMM against float32 (Lepton and torch) and torch's int8 dynamic Linear;
the MNIST recipes' models (MLP, CNN, LSTM; trained here briefly) in float32, int8 and pruned, for
accuracy and for latency / throughput at batch 1 and 64 against torch float32 and
torch.ao.quantization.quantize_dynamic on the same weights; the character GPT when this build has
it; and `lepton serve` under a bounded local load."""

import gzip
import http.client
import json
import os
import statistics
import threading
import time
import warnings

import numpy as np

import lepton
from harness import Suite, main as bench_main
from lepton import nn, prune, quant

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
MEAN, STD = 0.1307, 0.3081


class Report:
    """Several suites under one --json file, plus figures that are not timings."""

    def __init__(self):
        self.suites, self.extra = [], {}

    def to_json(self):
        return {"suites": [s.to_json() for s in self.suites], **self.extra}


def _idx(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist():
    """(x_train, y_train, x_test, y_test), images normalised as the recipes do, [N, 1, 28, 28] float32."""
    def prep(images):
        return ((images.reshape(len(images), 1, 28, 28).astype(np.float32) / 255 - MEAN) / STD).astype(np.float32)

    return (prep(_idx("train-images-idx3-ubyte.gz")), _idx("train-labels-idx1-ubyte.gz").astype(np.int64),
            prep(_idx("t10k-images-idx3-ubyte.gz")), _idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))


def train(model, x, y, steps, lr=2e-3, batch=128, seed=0, masked=False, clip=None):
    """Adam at a constant lr on random batches; masked=True re-applies pruning masks after each step."""
    rng = np.random.default_rng(seed)
    opt = lepton.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(steps):
        idx = rng.integers(0, len(x), batch)
        opt.zero_grad()
        loss_fn(model(lepton.from_numpy(x[idx])), lepton.from_numpy(y[idx])).backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        if masked:
            prune.apply_masks(model)
    model.eval()
    return model


def accuracy(model, x, y, torch_model=False):
    """Test accuracy % over x in batches of 1000 (a Lepton model, or a torch one)."""
    right = 0
    for i in range(0, len(x), 1000):
        if torch_model:
            import torch

            with torch.no_grad():
                out = model(torch.from_numpy(x[i:i + 1000])).numpy()
        else:
            with lepton.inference_mode():
                out = model(lepton.from_numpy(x[i:i + 1000])).numpy()
        right += int((out.argmax(1) == y[i:i + 1000]).sum())
    return 100.0 * right / len(x)


def torch_copy(model):
    """The same model in torch (layers of the same names, so the state dict carries over)."""
    import torch

    from lepton.models import MnistLSTM

    if isinstance(model, MnistLSTM):
        class TorchLSTM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(model.cols, model.lstm.hidden_size, batch_first=True)
                self.fc = torch.nn.Linear(model.fc.in_features, model.fc.out_features)

            def forward(self, x):
                return self.fc(self.lstm(x.reshape(len(x), model.rows, model.cols))[1][0][-1])

        t = TorchLSTM()
    else:
        make = {nn.Flatten: lambda m: torch.nn.Flatten(m.start_dim, m.end_dim),
                nn.Linear: lambda m: torch.nn.Linear(m.in_features, m.out_features),
                nn.Conv2d: lambda m: torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                                     m.padding),
                nn.ReLU: lambda m: torch.nn.ReLU(), nn.MaxPool2d: lambda m: torch.nn.MaxPool2d(m.kernel_size),
                nn.Dropout: lambda m: torch.nn.Dropout(m.p), nn.Identity: lambda m: torch.nn.Identity()}
        t = torch.nn.Sequential(*[make[type(m)](m) for m in model])
    t.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    return t.eval()


def torch_int8(tmodel):
    """torch.ao's dynamic int8 quantisation (Linear and LSTM layers; torch has no dynamic Conv2d)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(tmodel, {torch.nn.Linear, torch.nn.LSTM}, dtype=torch.qint8)


# ---- GEMM ------------------------------------------------------------------------------------------

def gemm_suite(threads, quick):
    import torch

    suite = Suite(f"int8 dynamic linear vs float32 (cpu, threads={threads}, kernel {lepton._C.int8_gemm_kernel()}; "
                  "'lepton' = Lepton int8 incl. activation quantisation)", "GOP/s")
    suite.header()
    rng = np.random.default_rng(0)
    shapes = [(1, 128, 784), (64, 128, 784), (1, 1024, 1024), (64, 1024, 1024), (256, 1024, 1024)]
    if not quick:
        shapes += [(1, 4096, 4096), (128, 4096, 4096)]
    for m, n, k in shapes:
        x = rng.standard_normal((m, k), dtype=np.float32)
        w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
        b = rng.standard_normal(n, dtype=np.float32)
        lx, lw, lb = lepton.from_numpy(x), lepton.from_numpy(w), lepton.from_numpy(b)
        ql = quant.QuantizedLinear.from_float(_linear_from(lw, lb))
        tx, tw, tb = torch.from_numpy(x.copy()), torch.from_numpy(w.copy()), torch.from_numpy(b.copy())
        tlin = torch.nn.Linear(k, n)
        tlin.weight.data, tlin.bias.data = tw, tb
        tq = torch_int8(torch.nn.Sequential(tlin))
        with lepton.inference_mode(), torch.no_grad():
            suite.add(f"{m}x{k} -> {n}", 2 * m * n * k, lambda: ql(lx),
                      {"lepton fp32": lambda: lepton._C.linear(lx, lw, lb), "torch fp32": lambda: tlin(tx),
                       "torch int8": lambda: tq(tx)}, repeat=5)
    return suite


def _linear_from(w, b):
    lin = nn.Linear(w.shape[1], w.shape[0])
    with lepton.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    return lin


# ---- MNIST recipes' models ----------------------------------------------------------------------------

# name: (model class, training steps (full, quick), batch, lr, gradient clipping, channel pruning applies)
MNIST_MODELS = {"mnist-mlp": ("MLP", (1500, 300), 128, 2e-3, None, True),
                "mnist-cnn": ("MnistCNN", (600, 150), 64, 1e-3, None, True),
                "mnist-lstm": ("MnistLSTM", (500, 150), 128, 2e-3, 1.0, False)}


def _clone(model):
    from lepton.nn.fusion import clone_module

    return clone_module(model)


def _pruning_rows(model, xtr, ytr, xte, yte, channel_pruning, tune_steps, batch):
    """Sparsity vs test accuracy: global magnitude pruning and channel pruning, each before and
    after a short fine-tune (Adam lr 5e-4, masks re-applied after each step)."""
    rows, total = [], sum(p.numel() for p in model.parameters())
    for amount in (0.5, 0.8, 0.9):
        pm = _clone(model)
        s = prune.magnitude(pm, amount)
        before = accuracy(pm, xte, yte)
        train(pm, xtr, ytr, tune_steps, lr=5e-4, batch=batch, seed=1, masked=True)
        rows.append({"method": f"magnitude global {amount:.0%}", "sparsity": s, "accuracy": before,
                     "fine_tuned": accuracy(pm, xte, yte)})
    if channel_pruning:
        for amount in (0.5, 0.75):
            pm = _clone(model)
            removed = prune.channels(pm, amount)
            before = accuracy(pm, xte, yte)
            train(pm, xtr, ytr, tune_steps, lr=5e-4, batch=batch, seed=1)
            params = sum(p.numel() for p in pm.parameters())
            rows.append({"method": f"channels {amount:.0%} ({params} params)", "sparsity": 1 - params / total,
                         "accuracy": before, "fine_tuned": accuracy(pm, xte, yte), "removed": removed})
    return rows


def mnist_suites(threads, quick, report):
    """For each MNIST recipe's model, trained briefly here: accuracy in float32, int8 (Lepton and
    torch.ao) and pruned; then latency/throughput of Lepton int8 against the float models and
    torch.ao's int8 model on the same weights."""
    import torch

    from lepton import models

    xtr, ytr, xte, yte = mnist()
    suites, figures, int8_models = [], {}, {}
    tune_steps = 80 if quick else 200
    for name, (cls, steps, batch, lr, clip, channel_pruning) in MNIST_MODELS.items():
        steps = steps[1] if quick else steps[0]
        lepton.manual_seed(0)
        t0 = time.perf_counter()
        model = train(getattr(models, cls)(), xtr, ytr, steps, lr=lr, batch=batch, clip=clip)
        train_s = time.perf_counter() - t0
        q8 = quant.quantize_dynamic(model)
        tm = torch_copy(model)
        tq = torch_int8(tm)
        acc = {"fp32": accuracy(model, xte, yte), "int8 dynamic": accuracy(q8, xte, yte),
               "int8 weight-only": accuracy(quant.quantize_dynamic(model, weight_only=True), xte, yte),
               "torch fp32": accuracy(tm, xte, yte, torch_model=True),
               "torch int8 dynamic": accuracy(tq, xte, yte, torch_model=True)}
        print(f"\n## {name} ({cls}), Adam {steps} steps of {batch} ({train_s:.1f} s): test accuracy %")
        for k, v in acc.items():
            print(f"{k:<22} {v:6.2f}   ({v - acc['fp32']:+.2f} vs fp32)")
        rows = _pruning_rows(model, xtr, ytr, xte, yte, channel_pruning, tune_steps, batch)
        print(f"## {name}: pruning, test accuracy % (fine-tune: Adam lr 5e-4, {tune_steps} steps, masks kept)")
        for r in rows:
            print(f"{r['method']:<34} sparsity {r['sparsity']:5.1%}  acc {r['accuracy']:6.2f}  "
                  f"fine-tuned {r['fine_tuned']:6.2f}")
        if not channel_pruning:
            print("(channel pruning: not available for recurrent layers)")
        figures[name] = {"steps": steps, "train_seconds": train_s, "accuracy": acc, "pruning": rows}

        suite = Suite(f"{name} inference (cpu, threads={threads}; 'lepton' = Lepton int8 dynamic; torch int8 = "
                      "torch.ao quantize_dynamic of Linear/LSTM)", "samples/s", scale=1)
        suite.header()
        refs = {"lepton fp32": model, "torch fp32": tm, "torch int8": tq}
        convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
        if convs:  # torch.ao leaves Conv2d in float: the same choice, for a like-for-like figure
            refs["lepton int8 no-conv"] = quant.quantize_dynamic(
                model, qconfig_spec={n for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        for b in (1, 64):
            lx, tx = lepton.from_numpy(xte[:b].copy()), torch.from_numpy(xte[:b].copy())
            with lepton.inference_mode(), torch.no_grad():
                suite.add(f"batch {b}", b, lambda: q8(lx),
                          {k: (lambda m=m: m(tx)) if k.startswith("torch") else (lambda m=m: m(lx))
                           for k, m in refs.items()}, interleave=True, repeat=7)
        suites.append(suite)
        int8_models[name] = q8
    report.extra["mnist"] = figures
    return suites, int8_models["mnist-mlp"], xte.reshape(len(xte), -1)


# ---- GPT --------------------------------------------------------------------------------------------

def gpt_suite(threads):
    try:
        from lepton.models import CharGPT
    except ImportError as e:
        print(f"\n(GPT skipped: {e})")
        return None
    lepton.manual_seed(0)
    model = CharGPT(65, 4, 4, 128, 64).eval()
    q8 = quant.quantize_dynamic(model)
    suite = Suite(f"char GPT 4x128 forward (cpu, threads={threads}; 'lepton' = Lepton int8)", "tokens/s", scale=1)
    suite.header()
    for batch in (1, 64):
        idx = lepton.randint(0, 65, (batch, 64))
        with lepton.inference_mode():
            suite.add(f"batch {batch} x 64 tokens", batch * 64, lambda: q8(idx), {"lepton fp32": lambda: model(idx)},
                      repeat=5)
    return suite


# ---- server -----------------------------------------------------------------------------------------

def load_test(server, xs, clients, per_client):
    latencies, errors = [], [0]
    lock = threading.Lock()

    def client(c):
        for i in range(per_client):
            body = json.dumps({"input": xs[(c * per_client + i) % len(xs)].tolist()})
            t0 = time.perf_counter()
            conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            conn.close()
            with lock:
                latencies.append(time.perf_counter() - t0)
                errors[0] += r.status != 200

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {"requests": len(latencies), "errors": errors[0], "rps": len(latencies) / wall, "p50_ms": q[49] * 1e3,
            "p99_ms": q[98] * 1e3}


def server_figures(model_q8, xte, quick, report):
    from lepton.serve import InferenceServer, Servable

    clients, per_client = 8, 40 if quick else 150
    print(f"\n## lepton serve, MNIST MLP int8: {clients} concurrent clients x {per_client} single-sample requests "
          "(new connection each, loopback)")
    rows = {}
    for label, max_batch in (("no batching (max_batch 1)", 1), ("micro-batching (max_batch 64, 2 ms)", 64)):
        servable = Servable(model_q8, (784,), name="mnist-mlp-int8", version="bench")
        with InferenceServer(servable, port=0, max_batch=max_batch, max_wait_ms=2.0) as srv:
            load_test(srv, xte, 2, 10)  # warm-up
            r = load_test(srv, xte, clients, per_client)
        rows[label] = r
        print(f"{label:<38} {r['rps']:7.0f} req/s  p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
              f"errors {r['errors']}")
    report.extra["server"] = rows


def run(threads=2, quick=False):
    import torch

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    report = Report()
    report.suites.append(gemm_suite(threads, quick))
    suites, q8, xte = mnist_suites(threads, quick, report)
    report.suites += suites
    g = gpt_suite(threads)
    if g:
        report.suites.append(g)
    server_figures(q8, xte, quick, report)
    return report


if __name__ == "__main__":
    bench_main(run, __doc__, "fewer GEMM shapes, shorter training and load test", threads_default=2)

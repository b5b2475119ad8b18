"""Token generation at batch 1: Lepton's KV-cache decoding (float32; int8 with activations quantised
per row; int8 weight-only, which dequantises its weights on every call) and its uncached loop,
against torch's plain loop (nanoGPT's generate: the whole window re-encoded every step) on the same
weights. Greedy decoding first checks that both engines produce the same tokens. Prints tokens/s,
the torch version and the machine's FMA peak beside the table."""

import numpy as np

import lepton
from gemm import fma_peak
from gpt_reference import torch_gpt
from harness import Suite, main as bench_main
from lepton.models import CharGPT
from lepton.quant import quantize_dynamic

SIZES = {  # name: (vocab, n_layer, n_head, n_embd, block_size)
    "char 4x128": (65, 4, 4, 128, 256),
    "6x384": (65, 6, 6, 384, 256),
    "GPT-2 124M": (50304, 12, 12, 768, 1024),
}


def torch_twin(torch, model, shape):
    vocab, n_layer, n_head, n_embd, block = shape
    twin = torch_gpt(torch, vocab, n_layer, n_head, n_embd, block).eval()
    twin.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    return twin


def torch_generate(torch, twin, idx, new, block, greedy=False):
    """nanoGPT's loop: crop to the window, run it all, sample the last position."""
    with torch.no_grad():
        for _ in range(new):
            logits = twin(idx[:, -block:])[:, -1, :]
            nxt = logits.argmax(-1, keepdim=True) if greedy else torch.multinomial(logits.softmax(-1), 1)
            idx = torch.cat([idx, nxt], 1)
    return idx


def run(threads=2, quick=False):
    import torch

    lepton.set_num_threads(threads)
    torch.set_num_threads(threads)
    peak = fma_peak(threads)
    new = 32 if quick else 128
    suite = Suite(f"generation, batch 1, {new} new tokens from an 8-token prompt (cpu, threads={threads}, "
                  f"torch {torch.__version__}, FMA peak {peak or 0:.0f} GFLOP/s)", "tokens/s", scale=1)
    suite.header()
    for name, shape in SIZES.items():
        if quick and name == "GPT-2 124M":
            continue
        vocab, n_layer, n_head, n_embd, block = shape
        lepton.manual_seed(0)
        model = CharGPT(vocab, n_layer, n_head, n_embd, block).eval()
        int8 = quantize_dynamic(model)
        int8_weights = quantize_dynamic(model, weight_only=True)
        twin = torch_twin(torch, model, shape)
        prompt = np.random.default_rng(0).integers(0, vocab, (1, 8))
        ours, theirs = lepton.tensor(prompt), torch.from_numpy(prompt)
        same = np.array_equal(model.generate(ours, 16, top_k=1).numpy(),
                              torch_generate(torch, twin, theirs, 16, block, greedy=True).numpy())
        print(f"{name}: greedy tokens equal to torch's: {same}")
        torch_fn = lambda: torch_generate(torch, twin, theirs, new, block)  # noqa: E731
        timing = {"warmup": 1, "repeat": 3, "min_time": 0}
        suite.add(f"{name} cached", new, lambda: model.generate(ours, new), {"torch": torch_fn}, interleave=True,
                  **timing)
        suite.add(f"{name} int8, cached", new, lambda: int8.generate(ours, new), {"torch": torch_fn},
                  interleave=True, **timing)
        suite.add(f"{name} int8 weight-only, cached", new, lambda: int8_weights.generate(ours, new),
                  {"torch": torch_fn}, interleave=True, **timing)
        suite.add(f"{name} uncached", new, lambda: model.generate(ours, new, use_cache=False), {"torch": torch_fn},
                  interleave=True, **timing)
        suite.rows[-1]["greedy_equal_to_torch"] = same
    return suite


if __name__ == "__main__":
    bench_main(run, __doc__, "32 tokens, the two small models only")

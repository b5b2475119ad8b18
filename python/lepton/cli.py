"""The `lepton` command: info, train, eval, generate, bench, run, launch, serve, export.

Exit codes: 0 success, 1 training stopped by a NaN/Inf loss, 2 bad arguments or unusable files
(one line on stderr, no traceback), 130 interrupted.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (its default adds the whole usage text)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"must be a positive {'integer' if kind is int else 'number'}, "
                                             f"got '{text}'")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _nonnegative_int(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got '{text}'")
    return int(text)


class UsageError(ValueError):
    pass


def _count(n, noun):
    return f"{n} {noun}" + ("" if n == 1 else "s")


# ---- info ---------------------------------------------------------------------------------------

def _cmd_info(args):
    import lepton

    for key, value in lepton.info().items():
        print(f"{key:>20}: {value}")
    return 0


# ---- train --------------------------------------------------------------------------------------

def _check_device(device):
    import lepton

    if device.startswith("cuda") and not lepton.cuda.is_available():
        raise UsageError(f"device '{device}' requested but CUDA is not available (see `lepton info`)")
    try:
        lepton.device(device)
    except (ValueError, RuntimeError, TypeError) as e:
        raise UsageError(f"bad device '{device}': {e}") from None


_AMP_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def _resume_config(args, path):
    """The config stored in the checkpoint to resume, with --epochs/--steps applied; other settings
    must match it (a resumed run continues the same run)."""
    import lepton
    from lepton.train.trainer import CHECKPOINT_FORMAT

    if not os.path.isfile(path):
        raise UsageError(f"no checkpoint to resume from at '{path}'")
    state = lepton.load(path, map_location="cpu")
    config = state.get("config") if isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT else None
    if not config or "recipe" not in config:
        raise UsageError(f"'{path}' is not a checkpoint written by `lepton train`")
    if args.recipe is not None and args.recipe != config["recipe"]:
        raise UsageError(f"'{path}' is a {config['recipe']} run, not {args.recipe}")
    for flag, key in (("batch_size", "batch_size"), ("lr", "lr"), ("seed", "seed"), ("amp", "amp")):
        value = _AMP_DTYPES.get(args.amp) if flag == "amp" else getattr(args, flag)
        config.setdefault(key, None)
        if value is not None and value != config[key]:
            raise UsageError(f"--{flag.replace('_', '-')} {value} differs from the checkpoint's {config[key]}; "
                             "a resumed run keeps its settings (only --epochs/--steps may change)")
    if args.checkpoint_activations:  # (changes memory and time, not results: a resumed run may switch it on)
        config["checkpoint_activations"] = True
    if args.steps is not None:
        config["steps"], config["epochs"] = args.steps, args.epochs
    elif args.epochs is not None:
        config["epochs"], config["steps"] = args.epochs, None
    return config


def _launch_train(args):
    """`lepton train --nproc N`: this same command again as N ranks under mpiexec (each one then
    joins the job in _cmd_train); returns the job's exit status."""
    from lepton.distributed.launch import find_mpiexec, launch_command

    try:
        import mpi4py  # noqa: F401  (each rank needs it to join the job)

        mpiexec = find_mpiexec()
    except (ImportError, RuntimeError) as e:
        raise UsageError(f'--nproc needs mpi4py and an MPI library with mpiexec: pip install "lepton[dist]" ({e})') \
            from None
    _train_plan(args)  # bad settings are reported here, once, rather than by every rank
    proc = subprocess.Popen(launch_command(args.nproc, ["-m", "lepton", *args.raw_argv], mpiexec=mpiexec))
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the ranks got it too (one process group): let rank 0 say how to resume
        try:
            proc.wait(timeout=30)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.kill()
        return 130


def _join_job(args):
    """(rank, world size) of this process: joins the process group (MPI for --device cpu, NCCL for
    cuda) when started as one of several ranks (by `--nproc`, `lepton launch` or mpiexec), with
    --threads threads each (default: this node's cores shared out between its ranks)."""
    import lepton
    import lepton.distributed as dist
    from lepton.distributed import env

    cuda = args.device.startswith("cuda")
    if not dist.init_from_env("nccl" if cuda else "mpi"):
        if args.threads:
            lepton.set_num_threads(args.threads)
        return 0, 1
    world = dist.get_world_size()
    if args.nproc is not None and args.nproc != world:
        raise UsageError(f"--nproc {args.nproc} but this job has {world} ranks")
    if args.device == "cuda":  # one GPU per rank, as torchrun scripts pick cuda:LOCAL_RANK
        args.device = f"cuda:{dist.get_local_rank()}"
    lepton.set_num_threads(args.threads or max(1, lepton.get_num_threads() // (env.env_local_world_size() or world)))
    return dist.get_rank(), world


def _train_plan(args):
    """(config, output directory, checkpoint to resume from or None) of a `lepton train` command."""
    from lepton.train import recipes

    resume = None
    if args.resume is not None:
        if args.resume == "":  # bare --resume: the checkpoint in --out (or the recipe's default directory)
            out = args.out or os.path.join("runs", args.recipe or recipes.DEFAULT)
            resume = os.path.join(out, "checkpoint.safetensors")
        else:
            resume = args.resume
        config = _resume_config(args, resume)
        out = args.out or os.path.dirname(os.path.abspath(resume))
    else:
        name = args.recipe or recipes.DEFAULT
        config = recipes.make_config(name, args.epochs, args.steps, args.batch_size, args.lr,
                                     0 if args.seed is None else args.seed, _AMP_DTYPES.get(args.amp),
                                     args.checkpoint_activations)
        out = args.out or os.path.join("runs", name)
    return config, out, resume


def _cmd_train(args):
    import lepton
    import lepton.distributed as dist
    from lepton.distributed import env
    from lepton.train import recipes
    from lepton.train.trainer import NonFiniteError

    _check_device(args.device)
    if args.nproc is not None and args.nproc > 1 and (env.env_world_size() or 1) == 1:
        return _launch_train(args)
    rank, world = _join_job(args)
    config, out, resume = _train_plan(args)
    main = rank == 0  # the ranks train together; rank 0 alone prints and writes
    if main:
        os.makedirs(out, exist_ok=True)
        limits = [_count(config["epochs"], "epoch") if config["epochs"] else None,
                  _count(config["steps"], "step") if config["steps"] else None]
        plan = " or ".join(filter(None, limits))
        batch = f"batch {config['batch_size']}" + (f" per rank x {world} ranks = {config['batch_size'] * world}"
                                                   if world > 1 else "")
        amp = f", {config['amp']} autocast" if config.get("amp") else ""
        print(f"lepton train {config['recipe']}: {plan}, {batch}, lr {config['lr']}, seed {config['seed']}{amp}, "
              f"{_count(lepton.get_num_threads(), 'thread')}{' per rank' if world > 1 else ''} -> {out}"
              + (f" (resuming from {resume})" if resume else ""), flush=True)
    try:
        results = recipes.train(config, out, resume=resume, verbose=args.verbose, device=args.device)
    except NonFiniteError as e:
        if main:
            print(f"lepton train: training stopped: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if main:
            ckpt = os.path.join(out, "checkpoint.safetensors")
            again = f" --nproc {world}" if world > 1 else ""
            print(f"\nlepton train: interrupted; continue with: lepton train --resume {ckpt}{again}", file=sys.stderr)
        return 130
    if world > 1:
        dist.destroy_process_group()
    if not main:
        return 0
    test = results["test"]
    figures = f"test loss {test['loss']:.4f}  accuracy {100 * test['accuracy']:.2f}%" if "accuracy" in test else \
        f"validation loss {test['loss']:.4f}  perplexity {test['perplexity']:.3f}"
    rate = results["train_samples_per_s"]
    print(f"{figures}  ({_count(results['epochs'], 'epoch')}, {_count(results['steps'], 'step')}, "
          f"train {results['train_seconds']:.1f} s, wall {results['wall_seconds']:.1f} s"
          + (f", {rate:,.0f} samples/s" if rate else "") + ")")
    print(f"wrote {out}/: checkpoint.safetensors, best.safetensors, metrics.json, log.jsonl"
          + (", curves.png" if results["curves"] else ""))
    return 0


# ---- eval ---------------------------------------------------------------------------------------

def _pct(x):
    return f"{100 * x:6.2f}%"


def print_report(report, file=None):
    """The classification report: overall figures, a per-class table, the confusion matrix."""
    out = file or sys.stdout
    print(f"loss {report['loss']:.4f}  accuracy {_pct(report['accuracy']).strip()}  macro precision "
          f"{_pct(report['precision_macro']).strip()}  recall {_pct(report['recall_macro']).strip()}  "
          f"F1 {_pct(report['f1_macro']).strip()}\n", file=out)
    names = report["classes"]
    width = max(5, *(len(n) for n in names))
    print(f"{'class':<{width}}  precision   recall       F1  support", file=out)
    for name in names:
        c = report["per_class"][name]
        print(f"{name:<{width}}    {_pct(c['precision'])}  {_pct(c['recall'])}  {_pct(c['f1'])}  {c['support']:7d}",
              file=out)
    cm = report["confusion_matrix"]
    cell = max(4, len(str(max(max(row) for row in cm))) + 1)
    print("\nconfusion matrix (rows: true class, columns: predicted class)", file=out)
    print(" " * 4 + "".join(f"{j:>{cell}}" for j in range(len(cm))), file=out)
    named = names != [str(i) for i in range(len(names))]  # MNIST's class names are its indices
    for i, row in enumerate(cm):
        print(f"{i:>3} " + "".join(f"{v:>{cell}}" for v in row) + (f"   {names[i]}" if named else ""), file=out)


def _cmd_eval(args):
    from lepton.train import recipes

    _check_device(args.device)
    config, model = recipes.load_run(args.checkpoint)
    data = recipes.load_data(config, need_train=False)
    report = recipes.evaluate(model, data, config, args.device)
    print(f"{args.checkpoint}: {config['recipe']}")
    if config["task"] == "language":
        print(f"validation loss {report['loss']:.4f}  perplexity {report['perplexity']:.3f}  "
              f"bits/char {report['bits_per_char']:.3f}  ({config['eval_batches']} batches of "
              f"{config['batch_size']} x {config['block_size']} characters)")
    else:
        print_report(report)
    return 0


# ---- generate -----------------------------------------------------------------------------------

def _cmd_generate(args):
    import lepton
    from lepton.models.generation import check_sampling
    from lepton.train import recipes

    _check_device(args.device)
    config, model = recipes.load_run(args.checkpoint, task="language")
    vocab = config["vocab"]
    unknown = sorted(set(args.prompt) - set(vocab))
    if unknown:
        raise UsageError(f"the prompt has characters outside the model's vocabulary: {''.join(unknown)!r}")
    if not args.prompt:
        raise UsageError("the prompt must hold at least one character")
    lepton.manual_seed(args.seed)
    ids = [vocab.index(c) for c in args.prompt]
    model.to(args.device)
    idx = lepton.tensor([ids], dtype=lepton.int64, device=args.device)
    check_sampling(args.temperature, args.top_k, args.top_p)  # (before the prompt is echoed)
    print(args.prompt, end="", flush=True)
    for token in model.stream(idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p):  # (each character as it is drawn)
        print(vocab[token.item()], end="", flush=True)
    print()
    return 0


# ---- bench --------------------------------------------------------------------------------------

def _bench_dir():
    """bench/ of the source checkout this package runs from, or else of the checkout in the
    current directory (an installed wheel has none of its own)."""
    import lepton

    here = Path(lepton.__file__).resolve().parent  # python/lepton in a checkout
    for candidate in (here.parent.parent / "bench", Path.cwd() / "bench"):
        if (candidate / "harness.py").is_file():
            return candidate
    return None


def _cmd_bench(args):
    root = _bench_dir()
    if root is None:
        raise UsageError("the benchmarks live in the source checkout's bench/ directory, which this installation "
                         "does not have; run it from a clone's top directory")
    suites = sorted(p.stem for p in root.glob("*.py") if p.stem != "harness")
    if args.list:
        print("\n".join(suites))
        return 0
    unknown = [s for s in args.suites if s not in suites]
    if unknown:
        raise UsageError(f"unknown bench suite {', '.join(unknown)} (known: {', '.join(suites)})")
    extra = (["--quick"] if args.quick else []) + (["--threads", str(args.threads)] if args.threads else [])
    status = 0
    for suite in args.suites or suites:
        print(f"==> bench/{suite}.py {' '.join(extra)}", flush=True)
        status = subprocess.call([sys.executable, str(root / f"{suite}.py"), *extra], cwd=root) or status
    return status


# ---- run ----------------------------------------------------------------------------------------

def _cmd_run(args):
    from lepton.run import run

    run(args.program)
    return 0


# ---- the parser ---------------------------------------------------------------------------------

def build_parser():
    from lepton.train.recipes import DEFAULT, RECIPES

    parser = _Parser(prog="lepton", description="Lepton: a compact, fast deep-learning training engine.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("info", help="show the build (version, CPU ISA, threads, CUDA) and the devices found",
                       description="Show the build (version, CPU ISA, threads, CUDA) and the devices found.")
    p.set_defaults(func=_cmd_info)

    recipes_text = "\n".join(f"  {name:<16} {r.description}; defaults: "
                             + (f"{r.epochs} epochs" if r.epochs else f"{r.steps} steps")
                             + f", batch {r.batch_size}, lr {r.lr}" for name, r in RECIPES.items())
    p = sub.add_parser("train", help="train a recipe (default: mnist-mlp) on bundled data",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Train a model on bundled data and write, in --out, checkpoint.safetensors "
                                   "(last epoch, resumable), best.safetensors (best validation figure), "
                                   "metrics.json (test figures, history, throughput, times), log.jsonl and "
                                   "curves.png (with matplotlib).",
                       epilog=f"recipes:\n{recipes_text}")
    p.add_argument("recipe", nargs="?", choices=list(RECIPES), metavar="RECIPE",
                   help=f"one of {', '.join(RECIPES)} (default: {DEFAULT})")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--epochs", type=_positive(int), help="number of epochs")
    limit.add_argument("--steps", type=_positive(int), help="number of optimizer steps (instead of epochs)")
    p.add_argument("--batch-size", type=_positive(int),
                   help="samples per batch; with --nproc per rank (as PyTorch DDP), so the global batch is N times it")
    p.add_argument("--lr", type=_positive(float), help="peak learning rate")
    p.add_argument("--seed", type=_nonnegative_int, help="seed for weights, shuffling and dropout (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--amp", choices=("bf16", "fp16"),
                   help="mixed precision: forward and loss under autocast in bfloat16, or float16 with loss scaling")
    p.add_argument("--checkpoint-activations", action="store_true",
                   help="recompute each transformer block in backward instead of keeping its activations "
                        "(less memory, ~1/3 more compute; GPT recipes)")
    p.add_argument("--threads", type=_positive(int),
                   help="CPU threads, per rank with --nproc (default: all cores, shared out between the ranks)")
    p.add_argument("--nproc", type=_positive(int), metavar="N",
                   help="train data-parallel on N processes started by mpiexec (gradients averaged each step, "
                        "rank 0 writes); needs pip install \"lepton[dist]\"")
    p.add_argument("--out", metavar="DIR", help="output directory (default ./runs/RECIPE)")
    p.add_argument("--resume", nargs="?", const="", metavar="CHECKPOINT",
                   help="continue an interrupted run from CHECKPOINT (default DIR/checkpoint.safetensors); "
                        "the result is identical to an uninterrupted run")
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1,
                   help="0 quiet, 1 progress bar on a terminal (else a line per epoch), 2 a line per epoch")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on its test data",
                       description="Print the test report of a checkpoint written by `lepton train`: accuracy, "
                                   "per-class precision/recall/F1 and the confusion matrix (for the character "
                                   "model: validation loss and perplexity).")
    p.add_argument("checkpoint", help="a checkpoint.safetensors or best.safetensors from `lepton train`")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("generate", help="sample text from a shakespeare-gpt checkpoint",
                       description="Sample characters from a character-level GPT trained by `lepton train "
                                   "shakespeare-gpt`, continuing --prompt.")
    p.add_argument("checkpoint", help="a checkpoint of the shakespeare-gpt recipe")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=_positive(int), default=500, help="characters to generate (default 500)")
    p.add_argument("--temperature", type=_positive(float), default=1.0, help="sampling temperature (default 1.0)")
    p.add_argument("--top-k", type=_positive(int), help="sample among the K likeliest characters only")
    p.add_argument("--top-p", type=float, help="sample among the likeliest characters whose probability reaches P "
                                               "(nucleus sampling, 0 < P <= 1)")
    p.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("bench", help="run benchmark suites from the source checkout's bench/",
                       description="Run bench/SUITE.py scripts (all of them without arguments); each prints "
                                   "Lepton's figures beside PyTorch's/NumPy's with the ratio.")
    p.add_argument("suites", nargs="*", metavar="SUITE", help="e.g. gemm, elementwise, optim, training")
    p.add_argument("--list", action="store_true", help="list the suites and exit")
    p.add_argument("--quick", action="store_true", help="smaller problems (passed to each suite)")
    p.add_argument("--threads", type=_positive(int), help="threads (passed to each suite)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("run", help="run a PyTorch script unchanged on Lepton (import torch gives Lepton)",
                       description="Run SCRIPT.py (or -m MODULE) with ARGS as `python` would, with `import torch` "
                                   "and `import torchvision` resolving to Lepton's modules. Everything after "
                                   "the script is passed to it.")
    p.add_argument("program", nargs=argparse.REMAINDER, metavar="SCRIPT.py [ARGS...]",
                   help="the script (or -m MODULE) and its arguments")
    p.set_defaults(func=_cmd_run)

    from lepton.distributed.launch import add_launch_parser
    from lepton.serve.cli import add_export_parser, add_serve_parser

    add_launch_parser(sub)
    add_serve_parser(sub)
    add_export_parser(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.raw_argv = list(sys.argv[1:] if argv is None else argv)  # what `train --nproc` runs on every rank
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if args.command == "run":  # the program's own errors keep their tracebacks, as under `python`
        return args.func(args)
    try:
        return args.func(args)
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        print(f"lepton {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

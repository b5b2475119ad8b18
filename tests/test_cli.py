"""The `lepton` command: --help everywhere, one-line errors with exit code 2, and tiny real runs of
train / eval / generate / --resume."""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

import lepton
from lepton import nn
from lepton.cli import main
from lepton.train.plots import plot_history


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of `lepton argv...` run in this process."""
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse: --help and usage errors
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    assert err.endswith("\n") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.parametrize("command", [[], ["info"], ["train"], ["eval"], ["generate"], ["bench"]])
def test_help_everywhere(capsys, command):
    code, out, _ = run_cli(capsys, *command, "--help")
    assert code == 0 and out.startswith("usage: lepton")
    if command == ["train"]:
        for name in ("mnist-mlp", "mnist-cnn", "fashion-cnn", "shakespeare-gpt", "--resume", "--steps"):
            assert name in out


@pytest.mark.parametrize("argv, fragments", [
    (["train", "nosuch"], ["invalid choice: 'nosuch'"]),
    (["train", "--epochs", "-3"], ["--epochs", "must be a positive integer, got '-3'"]),
    (["train", "--epochs", "0"], ["must be a positive integer, got '0'"]),
    (["train", "--batch-size", "many"], ["must be a positive integer, got 'many'"]),
    (["train", "--lr", "-0.5"], ["must be a positive number"]),
    (["train", "--epochs", "2", "--steps", "3"], ["not allowed with argument"]),
    (["train", "--device", "cuda"], ["CUDA is not available"]),
    (["train", "--resume", "/nonexistent/ckpt.safetensors"], ["no checkpoint to resume from"]),
    (["eval", "/nonexistent/ckpt.safetensors"], ["lepton eval: error:", "No such file"]),
    (["generate", "/nonexistent/ckpt.safetensors"], ["lepton generate: error:"]),
    (["bench", "nosuch"], ["unknown bench suite nosuch"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, argv, fragments):
    if argv[:2] == ["train", "--device"] and lepton.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *fragments)


def test_files_that_are_not_training_checkpoints(capsys, tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    code, _, err = run_cli(capsys, "eval", str(garbage))
    assert_one_line_error(code, err, "is not a valid Lepton checkpoint")
    plain = tmp_path / "plain.safetensors"
    lepton.save({"w": lepton.ones(3)}, plain)
    for command in ("eval", "generate"):
        code, _, err = run_cli(capsys, command, str(plain))
        assert_one_line_error(code, err, "is not a checkpoint written by `lepton train`")


def test_train_eval_resume_on_mnist(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--steps", "4", "--batch-size", "32", "--out", str(out),
                                "--verbose", "0", "--seed", "3")
    assert code == 0, err
    assert "test loss" in stdout and "accuracy" in stdout
    assert ("curves.png" in stdout) == (importlib.util.find_spec("matplotlib") is not None)  # the plot extra
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["config"]["batch_size"] == 32 and metrics["config"]["seed"] == 3
    test = metrics["test"]
    assert 0.0 <= test["accuracy"] <= 1.0 and len(test["confusion_matrix"]) == 10
    assert sum(map(sum, test["confusion_matrix"])) == 10000
    assert len(metrics["history"]["loss"]) == 1 and metrics["train_samples_per_s"] > 0
    for name in ("checkpoint.safetensors", "best.safetensors", "log.jsonl"):
        assert (out / name).exists(), name
    # eval prints the same test figures from the checkpoint alone
    code, stdout, err = run_cli(capsys, "eval", str(out / "checkpoint.safetensors"))
    assert code == 0, err
    assert f"accuracy {100 * test['accuracy']:.2f}%" in stdout
    assert "confusion matrix" in stdout and "precision" in stdout
    # a classifier checkpoint is the wrong kind for generate
    code, _, err = run_cli(capsys, "generate", str(out / "checkpoint.safetensors"))
    assert_one_line_error(code, err, "holds a mnist-mlp model")
    # resume keeps the run's settings: a different --lr is refused, more --steps continue it
    code, _, err = run_cli(capsys, "train", "--resume", str(out / "checkpoint.safetensors"), "--lr", "0.5")
    assert_one_line_error(code, err, "--lr 0.5 differs from the checkpoint's 0.002")
    code, stdout, err = run_cli(capsys, "train", "--resume", "--out", str(out), "--steps", "6", "--verbose", "0")
    assert code == 0, err
    assert "resuming from" in stdout
    assert json.loads((out / "metrics.json").read_text())["steps"] == 6


def test_train_with_mixed_precision(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--steps", "3", "--batch-size", "32", "--out", str(out),
                                "--verbose", "0", "--amp", "bf16")
    assert code == 0, err
    assert "bfloat16 autocast" in stdout
    assert json.loads((out / "metrics.json").read_text())["config"]["amp"] == "bfloat16"
    code, _, err = run_cli(capsys, "train", "--resume", "--out", str(out), "--steps", "4", "--amp", "fp16")
    assert_one_line_error(code, err, "--amp float16 differs from the checkpoint's bfloat16")
    code, _, err = run_cli(capsys, "train", "--steps", "3", "--amp", "int8")
    assert code == 2 and "invalid choice: 'int8'" in err


@pytest.mark.skipif(not hasattr(nn, "GPTBlock"), reason="the transformer layers have not landed in lepton.nn")
def test_train_eval_generate_char_gpt(capsys, tmp_path):
    out = tmp_path / "gpt"
    code, stdout, err = run_cli(capsys, "train", "shakespeare-gpt", "--steps", "2", "--out", str(out),
                                "--verbose", "0")
    assert code == 0, err
    assert "perplexity" in stdout
    ckpt = str(out / "checkpoint.safetensors")
    code, stdout, err = run_cli(capsys, "eval", ckpt)
    assert code == 0 and "perplexity" in stdout, err
    args = ("generate", ckpt, "--prompt", "ROMEO:", "--max-new-tokens", "16", "--top-k", "5", "--seed", "1")
    code, first, err = run_cli(capsys, *args)
    assert code == 0, err
    assert first.startswith("ROMEO:") and len(first.rstrip("\n")) == len("ROMEO:") + 16
    assert run_cli(capsys, *args)[1] == first  # the seed makes it reproducible
    code, _, err = run_cli(capsys, "generate", ckpt, "--prompt", "\u00e9t\u00e9")
    assert_one_line_error(code, err, "outside the model's vocabulary")


def test_console_script_exit_code_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lepton", "train", "--epochs", "-1"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]


def test_curves_png_and_the_note_without_matplotlib(tmp_path, monkeypatch, capsys):
    history = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.6, 0.8], "val_accuracy": [0.5, 0.7]}
    pytest.importorskip("matplotlib")
    assert plot_history(history, tmp_path / "curves.png", title="t")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    assert plot_history(history, tmp_path / "none.png") is False
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "matplotlib is not installed" in err and not (tmp_path / "none.png").exists()


def test_bench_finds_the_checkout(capsys):
    code, out, _ = run_cli(capsys, "bench", "--list")
    assert code == 0 and "gemm" in out.split()
    assert np.all([name.isidentifier() for name in out.split()])

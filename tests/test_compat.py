"""lepton.compat and `lepton run`: torch/torchvision names resolve to Lepton's own module objects,
re-export paths are views, missing modules say so, and scripts run as `python` would run them."""

import subprocess
import sys
import textwrap

import pytest

import lepton
from lepton import compat
from lepton.compat.aliases import ALIASES, resolve


@pytest.fixture
def torch_is_lepton():
    compat.install()
    try:
        yield
    finally:
        compat.uninstall()


def test_torch_modules_are_leptons_own(torch_is_lepton):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim.lr_scheduler as sched
    from torch.utils.data import DataLoader

    assert torch is lepton and nn is lepton.nn and F is lepton.nn.functional
    assert sched is lepton.optim.lr_scheduler and DataLoader is lepton.data.DataLoader
    assert torch.nn.Linear is lepton.nn.Linear and torch.Tensor is lepton.Tensor


def test_reexport_paths_are_views_onto_lepton(torch_is_lepton):
    from torch.nn.modules.activation import MultiheadAttention
    from torch.nn.modules.linear import Linear
    import torch.nn.modules.transformer as tr

    assert MultiheadAttention is lepton.nn.MultiheadAttention and Linear is lepton.nn.Linear
    assert tr.TransformerEncoderLayer is lepton.nn.TransformerEncoderLayer
    # importing torch.nn.modules rebinds lepton.nn.modules to the view; names through it still resolve
    assert lepton.nn.modules.activation.ReLU is lepton.nn.ReLU
    with pytest.raises(AttributeError, match="torch.nn.modules.linear.*NoSuchLayer"):
        tr2 = __import__("torch.nn.modules.linear", fromlist=["x"])
        tr2.NoSuchLayer


def test_missing_torch_modules_name_themselves(torch_is_lepton):
    with pytest.raises(ModuleNotFoundError, match="torch.distributions.*lepton.multinomial"):
        import torch.distributions  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match="torch.hub"):
        import torch.hub  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match="torch.quux"):
        import torch.quux  # noqa: F401
    import torch

    with pytest.raises(AttributeError, match="torch.quux"):
        torch.quux


def test_every_alias_target_exists():
    import importlib

    for name, target in ALIASES.items():
        if target.startswith("lepton.vision") or target == "lepton.utils.checkpoint":
            continue  # optional packages, checked by their own tests
        importlib.import_module(target)
    assert resolve("torch.nn.modules") == ("view", ("lepton.nn", "lepton.nn.modules"))
    assert resolve("torch.nn.modules.conv") == ("view", ("lepton.nn.conv", "lepton.nn.modules.conv", "lepton.nn",
                                                        "lepton.nn.modules"))
    assert resolve("torch.utils.data") == ("alias", "lepton.data")
    assert resolve("torch.fx.graph")[0] == "missing"


def test_uninstall_restores_plain_imports():
    compat.install()
    compat.install()  # idempotent
    import torch  # noqa: F401

    assert sys.modules["torch"] is lepton
    import torch.nn.modules.conv  # noqa: F401  (rebinds lepton.nn.modules while installed)

    compat.uninstall()
    assert not compat.is_installed() and sys.modules.get("torch") is not lepton
    assert lepton.nn.modules is sys.modules["lepton.nn.modules"]  # lepton's own package is back


def test_a_real_torch_is_put_aside_and_restored():
    real = pytest.importorskip("torch")
    compat.install()
    import torch

    assert torch is lepton
    compat.uninstall()
    import torch as again

    assert again is real and sys.modules["torch.nn"] is real.nn


def test_torch_namespace_flags_and_queries(torch_is_lepton):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    assert torch.backends.cudnn.is_available() is False and torch.backends.mps.is_available() is False
    torch.set_float32_matmul_precision("high")
    assert torch.get_float32_matmul_precision() == "high"
    with pytest.raises(RuntimeError, match="precision"):
        torch.set_float32_matmul_precision("low")
    torch.cuda.manual_seed(3)
    torch.cuda.manual_seed_all(3)
    assert torch.initial_seed() == 3
    if not torch.cuda.is_available():
        assert torch.accelerator.current_accelerator() is None and torch.accelerator.is_available() is False
        assert torch.cuda.is_bf16_supported() is False
        torch.cuda.synchronize()
    assert torch.get_default_dtype() is torch.float32
    with pytest.raises(NotImplementedError, match="float32"):
        torch.set_default_dtype(torch.float64)
    f = lambda x: x + 1  # noqa: E731
    with pytest.warns(UserWarning, match="eagerly"):
        assert torch.compile(f) is f
    assert torch.jit.script(f) is f and torch.compile(disable=True)(f) is f
    scaler = torch.cuda.amp.GradScaler(enabled=False)
    assert not scaler.is_enabled()
    torch.testing.assert_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]))
    with pytest.raises(AssertionError, match="not close"):
        torch.testing.assert_close(torch.tensor([1.0]), torch.tensor([1.1]))


def _run(tmp_path, source, *args):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "lepton.run", str(script), *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)


def test_lepton_run_script_argv_main_and_exit_code(tmp_path):
    (tmp_path / "helper_mod.py").write_text("VALUE = 41\n")
    out = _run(tmp_path, """
        import sys
        import torch
        import helper_mod  # the script's directory is on sys.path
        assert __name__ == "__main__"
        print("ARGS", sys.argv[1:], torch.__name__, helper_mod.VALUE + 1)
        sys.exit(3)
        """, "--lr=0.1", "x")
    assert out.returncode == 3, out.stderr
    assert "ARGS ['--lr=0.1', 'x'] lepton 42" in out.stdout


def test_lepton_run_keeps_the_programs_traceback(tmp_path):
    out = _run(tmp_path, """
        import torch
        torch.ones(2) @ torch.ones(3)
        """)
    assert out.returncode == 1 and "Traceback" in out.stderr and "prog.py" in out.stderr


def test_lepton_run_command_and_bad_script(tmp_path):
    script = tmp_path / "p.py"
    script.write_text("import torch, torchvision\nprint('ok', torch.nn.ReLU()(torch.tensor([-1.0, 2.0])).tolist())\n")
    out = subprocess.run(["lepton", "run", str(script)], capture_output=True, text=True, timeout=120)
    if "torchvision" in out.stderr and "lepton.vision" not in ALIASES.values():
        pytest.skip("lepton.vision missing")
    assert out.returncode == 0, out.stderr
    assert "ok [0.0, 2.0]" in out.stdout
    out = subprocess.run([sys.executable, "-m", "lepton.run", str(tmp_path / "missing.py")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "no such script" in out.stderr

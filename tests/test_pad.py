"""nn.functional.pad against torch: the four modes, forward and gradient, on 2- to 5-d inputs,
and bad arguments as clear errors."""

import numpy as np
import pytest

import lepton
import lepton.nn.functional as F

torch = pytest.importorskip("torch")

CASES = [((2, 3, 5, 6), (1, 2, 2, 1)), ((3, 7), (3, 0)), ((1, 2, 4, 4, 5), (1, 1, 2, 0, 3, 3)), ((2, 4, 4), (0, 3)),
         ((1, 1, 2, 2), (1, 1, 1, 1))]


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape,pad", CASES)
def test_pad_matches_torch(mode, shape, pad):
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    lx, tx = lepton.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = F.pad(lx, pad, mode=mode), torch.nn.functional.pad(tx, pad, mode=mode)
    np.testing.assert_array_equal(y.detach().numpy(), yt.detach().numpy())
    g = np.random.default_rng(1).standard_normal(tuple(yt.shape)).astype(np.float32)
    y.backward(lepton.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(lx.grad.numpy(), tx.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_constant_value_and_negative_crop():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    for pad, value in (((1, -2), 7.5), ((-1, 2, 0, -1), 0.0), ((0, 0), 1.0)):
        y = F.pad(lepton.tensor(x), pad, value=value)
        np.testing.assert_array_equal(y.numpy(), torch.nn.functional.pad(torch.tensor(x), pad, value=value).numpy())


@pytest.mark.parametrize("call,exc,match", [
    (lambda x: F.pad(x, (1,)), ValueError, "an even number of ints"),
    (lambda x: F.pad(x, (1, 1), mode="mirror"), ValueError, "mode must be one of"),
    (lambda x: F.pad(x, (3, 0), mode="reflect"), ValueError, r"reflect padding of \(3, 0\) does not fit dimension 2 "
                                                            r"of size 3 \(at most 2 each side\)"),
    (lambda x: F.pad(x, (4, 0), mode="circular"), ValueError, "at most 3 each side"),
    (lambda x: F.pad(x, (-1, 0), mode="replicate"), ValueError, "does not fit"),
    (lambda x: F.pad(x, (1, 1), mode="reflect", value=2), ValueError, "value only applies to mode='constant'"),
    (lambda x: F.pad(x, (1, 1) * 3, mode="reflect"), ValueError, "pads the last 1-3 dims"),
    (lambda x: F.pad(x, (-4, 0)), ValueError, "crops more than"),
    (lambda x: F.pad(x.numpy(), (1, 1)), TypeError, "must be a lepton.Tensor"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call(lepton.zeros((2, 2, 3)))

"""torch.nn pieces that PyTorch programs use (nn.Transformer and its decoder, ConvTranspose2d, interpolate /
Upsample, InstanceNorm, padding layers, PixelShuffle, channel dropout, more activations and losses,
distances, Bilinear, one_hot) against torch 2.13 on CPU: the same weights and inputs give the same outputs
and the same input and parameter gradients, in float32 and float64; bad arguments raise clear errors;
state_dict keys equal torch's so torch weights load."""

import warnings

import numpy as np
import pytest

import lepton
from lepton import nn
from lepton.nn import functional as F
from conftest import assert_close

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def sample(*shape, seed=0, scale=1.0, dtype=np.float64):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _leaf(lib, a):
    return lib.tensor(a, requires_grad=a.dtype.kind == "f")


def compare(ours, theirs, arrays, tol=None, seed=1, params=()):
    """ours(*lepton tensors) and theirs(*torch tensors) on the same arrays: output and every gradient
    (of the inputs, and of the (lepton, torch) parameter pairs in params) for a random output gradient."""
    xs, txs = [_leaf(lepton, a) for a in arrays], [_leaf(torch, a) for a in arrays]
    tol = tol or TOL[arrays[0].dtype.type]
    out, tout = ours(*xs), theirs(*txs)
    assert_close(out, tout.detach(), **tol)
    if not tout.requires_grad:
        return out
    g = np.random.default_rng(seed).standard_normal(tuple(tout.shape)).astype(arrays[0].dtype)
    (out * lepton.tensor(g)).sum().backward()
    tout.backward(torch.from_numpy(g))
    for x, tx in zip(xs, txs):
        if tx.requires_grad:
            assert_close(x.grad, tx.grad, **tol)
    for (name, p), tp in params:
        assert p.grad is not None, f"no gradient reached {name}"
        assert_close(p.grad, tp.grad, **tol)
    return out


def copied(module, torch_module, dtype=np.float64):
    """torch_module with module's parameters (same names, same order) and buffers, both in dtype; returns the
    (name, parameter) / torch-parameter pairs for compare."""
    module.to(dtype=lepton.float64 if dtype == np.float64 else lepton.float32)
    torch_module.to(torch.float64 if dtype == np.float64 else torch.float32)
    ours, theirs = list(module.named_parameters()), list(torch_module.named_parameters())
    assert [n for n, _ in ours] == [n for n, _ in theirs]
    with torch.no_grad():
        for (_, p), (_, tp) in zip(ours, theirs):
            tp.copy_(torch.from_numpy(np.array(p.detach().numpy(), copy=True)))
        for (_, b), (_, tb) in zip(module.named_buffers(), torch_module.named_buffers()):
            tb.copy_(torch.from_numpy(np.array(b.numpy(), copy=True)))
    return list(zip(ours, [p for _, p in theirs]))


def compare_module(module, torch_module, arrays, call=lambda m, *xs: m(*xs), tol=None):
    params = copied(module, torch_module, arrays[0].dtype.type)
    return compare(lambda *xs: call(module, *xs), lambda *xs: call(torch_module, *xs), arrays, tol, params=params)


FLOATS = [np.float32, np.float64]

# ---- activations -------------------------------------------------------------------------------

# torch's float64 hardsigmoid gradient multiplies by 1/6 rounded to float32
SIXTH_IN_FLOAT32, LOOSE = {"hardsigmoid", "Hardsigmoid()"}, dict(rtol=1e-7, atol=1e-12)
ACTIVATIONS = {
    "leaky_relu": lambda f, x: f.leaky_relu(x, 0.2),
    "leaky_relu_default": lambda f, x: f.leaky_relu(x),
    "elu": lambda f, x: f.elu(x, 0.7),
    "selu": lambda f, x: f.selu(x),
    "celu": lambda f, x: f.celu(x, 1.5),
    "softplus": lambda f, x: f.softplus(x),
    "softplus_beta": lambda f, x: f.softplus(x, beta=2.0, threshold=3.0),
    "hardtanh": lambda f, x: f.hardtanh(x, -0.5, 1.5),
    "relu6": lambda f, x: f.relu6(x),
    "mish": lambda f, x: f.mish(x),
    "hardswish": lambda f, x: f.hardswish(x),
    "hardsigmoid": lambda f, x: f.hardsigmoid(x),
    "softsign": lambda f, x: f.softsign(x),
    "glu": lambda f, x: f.glu(x, 1),
    "logsigmoid": lambda f, x: f.logsigmoid(x),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_matches_torch(name, dtype):
    fn = ACTIVATIONS[name]
    x = sample(3, 4, 5, scale=4.0, dtype=dtype)
    x[0, 0, :3] = [60.0, -60.0, 0.5]  # far tails (softplus's threshold, exp overflow) and a mid value
    compare(lambda x: fn(F, x), lambda x: fn(TF, x), [x],
            tol=LOOSE if dtype == np.float64 and name in SIXTH_IN_FLOAT32 else None)


INPLACE = ["leaky_relu", "elu", "selu", "celu", "hardtanh", "relu6", "mish", "hardswish", "hardsigmoid"]


@pytest.mark.parametrize("name", INPLACE)
def test_inplace_activation_writes_its_input_and_matches_torch(name):
    fn = getattr(F, name)
    x = sample(4, 6, scale=4.0)

    def ours(x):
        h = x * 1.0
        out = fn(h, inplace=True)
        assert out is h
        return out

    compare(ours, lambda x: getattr(TF, name)(x * 1.0, inplace=True), [x],
            tol=LOOSE if name in SIXTH_IN_FLOAT32 else None)


MODULES = [
    (lambda m: m.LeakyReLU(0.1), "LeakyReLU(negative_slope=0.1)"),
    (lambda m: m.LeakyReLU(0.2, True), "LeakyReLU(negative_slope=0.2, inplace=True)"),
    (lambda m: m.ELU(), "ELU(alpha=1.0)"), (lambda m: m.CELU(0.5), "CELU(alpha=0.5)"),
    (lambda m: m.SELU(), "SELU()"), (lambda m: m.ReLU6(True), "ReLU6(inplace=True)"), (lambda m: m.Mish(), "Mish()"),
    (lambda m: m.Hardswish(), "Hardswish()"), (lambda m: m.Hardsigmoid(), "Hardsigmoid()"),
    (lambda m: m.Hardtanh(-2.0, 2.0), "Hardtanh(min_val=-2.0, max_val=2.0)"),
    (lambda m: m.Softplus(2.0, 5.0), "Softplus(beta=2.0, threshold=5.0)"), (lambda m: m.LogSigmoid(), "LogSigmoid()"),
    (lambda m: m.Softsign(), "Softsign()"), (lambda m: m.GLU(-1), "GLU(dim=-1)"),
    (lambda m: m.PReLU(), "PReLU(num_parameters=1)"), (lambda m: m.PReLU(4, 0.1), "PReLU(num_parameters=4)"),
]


@pytest.mark.parametrize("make,text", MODULES)
def test_activation_modules_match_torch(make, text):
    module, torch_module = make(nn), make(torch.nn)
    assert repr(module) == text
    x = sample(3, 4, 6, scale=3.0)
    compare_module(module, torch_module, [x], call=lambda m, x: m(x * 1.0),
                   tol=LOOSE if text in SIXTH_IN_FLOAT32 else None)


def test_activation_class_hierarchy_is_torchs():
    assert isinstance(nn.ReLU6(), nn.Hardtanh) and nn.ReLU6().max_val == 6.0
    assert not isinstance(nn.CELU(), nn.ELU)
    with pytest.warns(UserWarning, match="min_value"):
        assert nn.Hardtanh(min_value=-2.0).min_val == -2.0


def test_prelu_per_channel_on_images_and_errors():
    compare_module(nn.PReLU(3), torch.nn.PReLU(3), [sample(2, 3, 4, 4, scale=2.0, dtype=np.float32)])
    with pytest.raises(ValueError, match="one per channel"):
        nn.PReLU(4)(lepton.randn(2, 3, 5))
    with pytest.raises(ValueError, match="min_val"):
        F.hardtanh(lepton.randn(3), 1.0, -1.0)
    with pytest.raises(ValueError, match="even"):
        F.glu(lepton.randn(3, 5))
    with pytest.raises(TypeError, match="leaky_relu"):
        F.leaky_relu(np.ones(3))


# ---- losses ------------------------------------------------------------------------------------

LOSSES = {
    "smooth_l1": lambda f, x, y: f.smooth_l1_loss(x, y),
    "smooth_l1_beta_sum": lambda f, x, y: f.smooth_l1_loss(x, y, reduction="sum", beta=0.5),
    "smooth_l1_beta0": lambda f, x, y: f.smooth_l1_loss(x, y, beta=0.0),
    "huber": lambda f, x, y: f.huber_loss(x, y),
    "huber_delta_none": lambda f, x, y: f.huber_loss(x, y, reduction="none", delta=2.0),
    "kl_div_batchmean": lambda f, x, y: f.kl_div(f.log_softmax(x, 1), f.softmax(y, 1), reduction="batchmean"),
    "kl_div_sum_log_target": lambda f, x, y: f.kl_div(f.log_softmax(x, 1), f.log_softmax(y, 1), reduction="sum",
                                                      log_target=True),
    "kl_div_none": lambda f, x, y: f.kl_div(f.log_softmax(x, 1), f.softmax(y, 1), reduction="none"),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_matches_torch_in_input_and_target(name, dtype):
    fn = LOSSES[name]
    compare(lambda x, y: fn(F, x, y), lambda x, y: fn(TF, x, y),
            [sample(4, 5, scale=2.0, dtype=dtype), sample(4, 5, seed=3, scale=2.0, dtype=dtype)])


def test_kl_div_mean_warns_and_zero_targets_give_zero():
    x, y = sample(3, 4), np.abs(sample(3, 4, seed=2))
    y[0, :2] = 0.0  # (torch's gradient with respect to such a target is NaN; the target is a constant here)
    with pytest.warns(UserWarning, match="batchmean"):
        compare(lambda x: F.kl_div(x, lepton.tensor(y)), lambda x: TF.kl_div(x, torch.tensor(y)), [x])


@pytest.mark.parametrize("kwargs", [dict(), dict(swap=True), dict(p=1, margin=0.5, reduction="sum"),
                                    dict(p=3, reduction="none")])
def test_triplet_margin_loss_matches_torch(kwargs):
    arrays = [sample(6, 5, seed=s) for s in (1, 2, 3)]
    compare(lambda *t: F.triplet_margin_loss(*t, **kwargs), lambda *t: TF.triplet_margin_loss(*t, **kwargs), arrays)
    compare(lambda *t: nn.TripletMarginLoss(**kwargs)(*t), lambda *t: torch.nn.TripletMarginLoss(**kwargs)(*t),
            arrays)


@pytest.mark.parametrize("make", [lambda m: m.SmoothL1Loss(beta=0.3), lambda m: m.HuberLoss(delta=0.5),
                                  lambda m: m.KLDivLoss(reduction="batchmean"),
                                  lambda m: m.KLDivLoss(reduction="sum", log_target=True)])
def test_loss_modules_match_torch(make):
    compare(lambda x, y: make(nn)(x, y), lambda x, y: make(torch.nn)(x, y), [sample(3, 7), sample(3, 7, seed=5)])


def test_huber_weight_and_legacy_reduction_flags():
    x, y, w = sample(3, 4), sample(3, 4, seed=2), np.abs(sample(3, 4, seed=3))
    compare(lambda x, y: F.huber_loss(x, y, weight=lepton.tensor(w)),
            lambda x, y: TF.huber_loss(x, y, weight=torch.tensor(w)), [x, y])
    with pytest.warns(UserWarning, match="reduction='sum'"):
        loss = nn.MSELoss(size_average=False)
    assert loss.reduction == "sum"
    with pytest.warns(UserWarning, match="reduction='none'"):
        assert nn.SmoothL1Loss(reduce=False).reduction == "none"
    assert nn.CrossEntropyLoss(None, None, 3).ignore_index == 3  # torch's positional order
    with pytest.raises(ValueError, match="beta"):
        F.smooth_l1_loss(lepton.randn(3), lepton.randn(3), beta=-1.0)
    with pytest.raises(ValueError, match="delta"):
        F.huber_loss(lepton.randn(3), lepton.randn(3), delta=0.0)
    with pytest.raises(ValueError, match="not a valid value"):
        nn.KLDivLoss(reduction="avg")
    with pytest.raises(ValueError, match="margin"):
        nn.TripletMarginLoss(margin=0.0)


# ---- distances, normalize, one_hot, bilinear -------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_cosine_similarity_and_pairwise_distance_match_torch(dtype):
    x1, x2 = sample(4, 6, dtype=dtype), sample(4, 6, seed=2, dtype=dtype)
    x1[1] = 0.0  # a zero vector: its norm is clamped at eps, and its gradient stays finite
    compare(lambda a, b: F.cosine_similarity(a, b), lambda a, b: TF.cosine_similarity(a, b), [x1, x2])
    compare(lambda a, b: nn.CosineSimilarity(dim=0)(a, b), lambda a, b: torch.nn.CosineSimilarity(dim=0)(a, b),
            [x1, x2])
    compare(lambda a, b: F.cosine_similarity(a, b, dim=-1), lambda a, b: TF.cosine_similarity(a, b, dim=-1),
            [sample(1, 6, dtype=dtype), x2])  # broadcasting
    for p in (1.0, 2.0, 3.0, float("inf")):
        compare(lambda a, b: F.pairwise_distance(a, b, p), lambda a, b: TF.pairwise_distance(a, b, p), [x1, x2])
    compare(lambda a, b: nn.PairwiseDistance(keepdim=True)(a, b),
            lambda a, b: torch.nn.PairwiseDistance(keepdim=True)(a, b), [x1, x2])


@pytest.mark.parametrize("kwargs", [dict(), dict(p=1.0, dim=0), dict(dim=-1, eps=0.5)])
def test_normalize_matches_torch(kwargs):
    x = sample(3, 5)
    x[0] = 0.0
    compare(lambda x: F.normalize(x, **kwargs), lambda x: TF.normalize(x, **kwargs), [x])


def test_one_hot_matches_torch_and_checks_indices():
    idx = np.array([[0, 3], [2, 1]])
    for n in (-1, 6):
        ours, theirs = F.one_hot(lepton.tensor(idx), n), TF.one_hot(torch.tensor(idx), n)
        assert ours.dtype == lepton.int64
        assert_close(ours, theirs)
    with pytest.raises(TypeError, match="int64"):
        F.one_hot(lepton.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="smaller than num_classes"):
        F.one_hot(lepton.tensor([0, 3]), 3)
    with pytest.raises(ValueError, match="non-negative"):
        F.one_hot(lepton.tensor([0, -1]), 3)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bias", [True, False])
def test_bilinear_matches_torch(bias, dtype):
    module = nn.Bilinear(3, 4, 5, bias=bias)
    assert repr(module) == repr(torch.nn.Bilinear(3, 4, 5, bias=bias))
    bound = 1 / np.sqrt(3)
    assert np.abs(module.weight.detach().numpy()).max() <= bound
    compare_module(module, torch.nn.Bilinear(3, 4, 5, bias=bias),
                   [sample(2, 6, 3, dtype=dtype), sample(2, 6, 4, seed=4, dtype=dtype)])
    with pytest.raises(ValueError, match="bilinear"):
        module(lepton.randn(2, 4), lepton.randn(2, 4))


# ---- transposed convolution -------------------------------------------------------------------

CONV_T = [
    dict(),
    dict(stride=2),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2), dilation=(1, 2)),
    dict(stride=2, padding=1, groups=2),
    dict(padding=2, dilation=2),
    dict(stride=3, padding=4, bias=False),  # padding > dilation·(k-1): the equivalent convolution crops
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kwargs", CONV_T, ids=[str(k) for k in CONV_T])
def test_conv_transpose2d_matches_torch(kwargs, dtype):
    module = nn.ConvTranspose2d(4, 6, (3, 4), **kwargs)
    torch_module = torch.nn.ConvTranspose2d(4, 6, (3, 4), **kwargs)
    assert repr(module) == repr(torch_module)
    assert tuple(module.weight.shape) == tuple(torch_module.weight.shape)
    compare_module(module, torch_module, [sample(2, 4, 5, 6, dtype=dtype)])


def test_conv_transpose2d_unbatched_output_size_and_functional():
    module, torch_module = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), torch.nn.ConvTranspose2d(3, 2, 3, 2, 1)
    params = copied(module, torch_module)
    for size in ([8, 9], [2, 2, 7, 10]):
        compare(lambda x: module(x, output_size=size), lambda x: torch_module(x, output_size=size),
                [sample(2, 3, 4, 5)], params=params)
    compare(lambda x: module(x), lambda x: torch_module(x), [sample(3, 4, 5)])  # unbatched
    with pytest.raises(ValueError, match="valid sizes range"):
        module(lepton.randn(1, 3, 4, 5), output_size=[12, 12])
    compare(lambda x, w: F.conv_transpose2d(x, w, None, 2, 0, 1, 1, 2),
            lambda x, w: TF.conv_transpose2d(x, w, None, 2, 0, 1, 1, 2), [sample(1, 2, 4, 4), sample(2, 3, 3, 3)])


def test_conv_transpose2d_init_and_errors():
    torch.manual_seed(0)
    module = nn.ConvTranspose2d(8, 4, 3, groups=2)
    bound = 1 / np.sqrt(2 * 9)  # torch's fan_in of the transposed weight: size(1)·kH·kW
    w = module.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert [k for k, _ in module.state_dict().items()] == list(torch.nn.ConvTranspose2d(8, 4, 3).state_dict())
    with pytest.raises(ValueError, match="output padding must be smaller"):
        nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)(lepton.randn(1, 2, 4, 4))
    with pytest.raises(ValueError, match="zeros"):
        nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.ConvTranspose2d(3, 2, 3, groups=2)
    with pytest.raises(ValueError, match="channels"):
        F.conv_transpose2d(lepton.randn(1, 3, 4, 4), lepton.randn(2, 2, 3, 3))
    with pytest.raises(ValueError, match="empty output"):
        F.conv_transpose2d(lepton.randn(1, 2, 1, 1), lepton.randn(2, 2, 1, 1), padding=1)


def test_dcgan_generator_step_matches_torch():
    """A DCGAN-shaped generator (ConvTranspose2d + BatchNorm2d + ReLU(inplace) + Tanh) end to end."""
    def make(m):
        return m.Sequential(m.ConvTranspose2d(6, 8, 4, 1, 0, bias=False), m.BatchNorm2d(8), m.ReLU(True),
                            m.ConvTranspose2d(8, 4, 4, 2, 1, bias=False), m.BatchNorm2d(4), m.LeakyReLU(0.2, True),
                            m.ConvTranspose2d(4, 3, 4, 2, 1, bias=False), m.Tanh())
    out = compare_module(make(nn), make(torch.nn), [sample(2, 6, 1, 1, dtype=np.float32)],
                         tol=dict(rtol=1e-4, atol=1e-5))
    assert tuple(out.shape) == (2, 3, 16, 16)


# ---- interpolate / Upsample, pixel shuffle ---------------------------------------------------------

INTERPOLATE = [
    (4, dict(scale_factor=2)),
    (4, dict(scale_factor=1.5)),
    (4, dict(size=(7, 3))),
    (4, dict(size=5, mode="nearest-exact")),
    (4, dict(scale_factor=(0.5, 1.7), recompute_scale_factor=True)),
    (4, dict(scale_factor=2, mode="bilinear")),
    (4, dict(scale_factor=1.7, mode="bilinear")),
    (4, dict(size=(9, 4), mode="bilinear", align_corners=True)),
    (4, dict(size=(3, 2), mode="bilinear", align_corners=False)),
    (4, dict(size=(3, 4), mode="area")),
    (3, dict(scale_factor=3, mode="linear")),
    (3, dict(size=11, mode="linear", align_corners=True)),
    (3, dict(size=4, mode="nearest")),
    (5, dict(scale_factor=(2, 1.5, 0.6), mode="trilinear")),
    (5, dict(size=(3, 5, 2))),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dims,kwargs", INTERPOLATE, ids=[f"{d}d-{k}" for d, k in INTERPOLATE])
def test_interpolate_matches_torch(dims, kwargs, dtype):
    x = sample(*[2, 3, 5, 6, 4][:dims], dtype=dtype)
    compare(lambda x: F.interpolate(x, **kwargs), lambda x: TF.interpolate(x, **kwargs), [x])


def test_upsample_modules_match_torch():
    x = sample(1, 2, 3, 4)
    for make in (lambda m: m.Upsample(scale_factor=2), lambda m: m.Upsample(size=(5, 7), mode="bilinear"),
                 lambda m: m.Upsample(scale_factor=(2, 3), mode="bilinear", align_corners=True),
                 lambda m: m.UpsamplingNearest2d(scale_factor=3), lambda m: m.UpsamplingBilinear2d(size=6)):
        assert repr(make(nn)) == repr(make(torch.nn))
        compare(lambda x: make(nn)(x), lambda x: make(torch.nn)(x), [x])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's upsample* are deprecated names for interpolate
        for name in ("upsample", "upsample_nearest", "upsample_bilinear"):
            compare(lambda x: getattr(F, name)(x, scale_factor=2), lambda x: getattr(TF, name)(x, scale_factor=2), [x])


def test_interpolate_errors():
    x = lepton.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="only one of size or scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="either size or scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="align_corners option"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="needs 4D input"):
        F.interpolate(lepton.randn(1, 2, 4), scale_factor=2, mode="bilinear")
    with pytest.raises(ValueError, match="same number of spatial dimensions"):
        F.interpolate(x, size=(3, 3, 3))
    with pytest.raises(ValueError, match="mode must be one of"):
        F.interpolate(x, scale_factor=2, mode="cubic")
    with pytest.raises(NotImplementedError, match="bicubic"):
        F.interpolate(x, scale_factor=2, mode="bicubic")


@pytest.mark.parametrize("shape,r", [((2, 8, 3, 4), 2), ((9, 2, 3), 3), ((2, 1, 4, 2, 2), 2)])
def test_pixel_shuffle_and_unshuffle_match_torch(shape, r):
    x = sample(*shape)
    out = compare(lambda x: nn.PixelShuffle(r)(x), lambda x: torch.nn.PixelShuffle(r)(x), [x])
    y = np.array(out.detach().numpy(), copy=True)
    compare(lambda y: F.pixel_unshuffle(y, r), lambda y: TF.pixel_unshuffle(y, r), [y])
    assert_close(F.pixel_unshuffle(out.detach(), r), x)
    assert repr(nn.PixelUnshuffle(r)) == repr(torch.nn.PixelUnshuffle(r))
    with pytest.raises(ValueError, match="divisible by the square"):
        F.pixel_shuffle(lepton.randn(1, 3, 2, 2), 2)
    with pytest.raises(ValueError, match="divisible by downscale_factor"):
        F.pixel_unshuffle(lepton.randn(1, 1, 3, 4), 2)


# ---- padding layers ---------------------------------------------------------------------------------

PADS = [("ZeroPad2d", (1, 2, 0, 3)), ("ConstantPad2d", (2, 3.5)), ("ConstantPad1d", ((1, 2), -1.0)),
        ("ReflectionPad2d", 2), ("ReflectionPad2d", (1, 0, 2, 1)), ("ReflectionPad1d", (3, 1)),
        ("ReplicationPad2d", (2, 1, 0, 3)), ("ReplicationPad1d", 2), ("ReplicationPad3d", 1), ("CircularPad2d", 1),
        ("ZeroPad1d", 2), ("ConstantPad3d", (1, 0.5))]


@pytest.mark.parametrize("name,args", PADS, ids=[f"{n}{a}" for n, a in PADS])
def test_padding_layers_match_torch(name, args):
    args = args if isinstance(args, tuple) and name.startswith("Constant") else (args,)
    module, torch_module = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    assert repr(module) == repr(torch_module)
    dims = int(name[-2])
    compare(lambda x: module(x), lambda x: torch_module(x), [sample(*[2, 3, 4, 5, 6][:dims + 2])])
    compare(lambda x: module(x), lambda x: torch_module(x), [sample(*[3, 4, 5, 6][:dims + 1])])  # unbatched
    with pytest.raises(ValueError, match=name):
        module(lepton.randn(*[2] * (dims + 3)))


def test_padding_layer_bad_padding():
    with pytest.raises(ValueError, match="tuple of 4 ints"):
        nn.ReflectionPad2d((1, 2))


# ---- instance norm ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kwargs", [dict(), dict(affine=True), dict(affine=True, track_running_stats=True),
                                    dict(track_running_stats=True, momentum=None), dict(affine=True, bias=False)])
def test_instance_norm2d_matches_torch_in_train_and_eval(kwargs, dtype):
    module, torch_module = nn.InstanceNorm2d(3, **kwargs), torch.nn.InstanceNorm2d(3, **kwargs)
    assert list(module.state_dict()) == list(torch_module.state_dict())
    x = sample(2, 3, 4, 5, scale=2.0, dtype=dtype) + 1.0
    params = copied(module, torch_module, dtype)
    for step in range(2):
        compare(lambda x: module(x), lambda x: torch_module(x), [x + step], params=params)
    for (name, b), (_, tb) in zip(module.named_buffers(), torch_module.named_buffers()):
        assert_close(b, tb, **TOL[dtype])
    module.eval()
    torch_module.eval()
    compare(lambda x: module(x), lambda x: torch_module(x), [x[0]])  # unbatched, running stats if tracked


def test_instance_norm1d_3d_functional_and_errors():
    compare_module(nn.InstanceNorm1d(4, affine=True), torch.nn.InstanceNorm1d(4, affine=True), [sample(2, 4, 7)])
    compare_module(nn.InstanceNorm3d(2), torch.nn.InstanceNorm3d(2), [sample(2, 2, 3, 2, 4)])
    w, b = sample(3), sample(3, seed=2)
    compare(lambda x, w, b: F.instance_norm(x, weight=w, bias=b, eps=1e-3),
            lambda x, w, b: TF.instance_norm(x, weight=w, bias=b, eps=1e-3), [sample(2, 3, 6), w, b])
    with pytest.raises(ValueError, match="expected 3D or 4D input"):
        nn.InstanceNorm2d(3)(lepton.randn(2, 3, 4, 4, 4))
    with pytest.raises(ValueError, match="num_features"):
        nn.InstanceNorm2d(4, affine=True)(lepton.randn(2, 3, 4, 4))
    with pytest.warns(UserWarning, match="num_features"):
        nn.InstanceNorm2d(4)(lepton.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="more than 1 spatial element"):
        F.instance_norm(lepton.randn(2, 3, 1, 1))
    assert not isinstance(nn.InstanceNorm2d(3), nn.BatchNorm2d)


def test_batch_norm_takes_torchs_bias_keyword():
    module = nn.BatchNorm2d(3, bias=False)
    assert module.bias is None
    assert list(module.state_dict()) == list(torch.nn.BatchNorm2d(3, bias=False).state_dict())
    compare_module(module, torch.nn.BatchNorm2d(3, bias=False), [sample(4, 3, 2, 2)])


# ---- channel dropout --------------------------------------------------------------------------------

@pytest.mark.parametrize("module,shape,channels", [(nn.Dropout2d, (8, 16, 3, 3), 2), (nn.Dropout1d, (8, 16, 5), 2),
                                                    (nn.Dropout1d, (16, 5), 1), (nn.Dropout3d, (4, 8, 2, 2, 2), 2),
                                                    (nn.Dropout3d, (8, 2, 2, 2), 1)])
def test_channel_dropout_zeroes_whole_channels(module, shape, channels):
    lepton.manual_seed(0)
    layer = module(0.5)
    x = lepton.tensor(np.ones(shape), requires_grad=True)
    out = layer(x)
    y = out.detach().numpy().reshape(int(np.prod(shape[:channels])), -1)
    per_channel = y.min(1)
    assert np.array_equal(per_channel, y.max(1))  # each channel is all zero or all scaled
    assert set(np.unique(per_channel)) <= {0.0, 2.0} and 0.2 < (per_channel == 0).mean() < 0.8
    out.sum().backward()
    assert_close(x.grad, out.detach().numpy())
    layer.eval()
    assert layer(x) is x
    assert repr(layer) == f"{module.__name__}(p=0.5, inplace=False)"


def test_channel_dropout_inplace_p1_and_errors():
    x = lepton.ones(2, 3, 4, 4) * 1.0
    assert F.dropout2d(x, 1.0, inplace=True) is x and float(x.abs().sum().item()) == 0.0
    with pytest.warns(UserWarning, match="3D input to dropout2d"):
        F.dropout2d(lepton.ones(2, 3, 4))
    with pytest.raises(ValueError, match="dropout1d: Expected 2D or 3D input"):
        F.dropout1d(lepton.ones(2, 3, 4, 4))
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout2d(1.5)


# ---- Transformer --------------------------------------------------------------------------------------

def causal(n):
    return np.where(np.triu(np.ones((n, n), dtype=bool), 1), -np.inf, 0.0)


TRANSFORMER_CONFIGS = {
    "post_norm": dict(),
    "pre_norm_batch_first_gelu": dict(norm_first=True, batch_first=True, activation="gelu"),
    "no_bias": dict(bias=False, layer_norm_eps=1e-3),
}


@pytest.mark.parametrize("config", list(TRANSFORMER_CONFIGS))
def test_transformer_matches_torch(config):
    kwargs = dict(d_model=8, nhead=2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=12, dropout=0.0,
                  **TRANSFORMER_CONFIGS[config])
    batch_first = kwargs.get("batch_first", False)
    batch, s, t = 3, 5, 4
    src = sample(batch, s, 8) if batch_first else sample(s, batch, 8)
    tgt = sample(batch, t, 8, seed=2) if batch_first else sample(t, batch, 8, seed=2)
    src_pad = np.zeros((batch, s), dtype=bool)
    src_pad[0, 3:] = True
    tgt_pad = np.zeros((batch, t), dtype=bool)
    tgt_pad[1, 3] = True

    def call(lib):
        def run(m, src, tgt):
            tensor = lambda a: lib.tensor(a)  # noqa: E731
            return m(src, tgt, tgt_mask=type(m).generate_square_subsequent_mask(t, dtype=lib.float64),
                     src_key_padding_mask=tensor(src_pad), tgt_key_padding_mask=tensor(tgt_pad),
                     memory_key_padding_mask=tensor(src_pad))
        return run

    torch_model = torch.nn.Transformer(**kwargs)
    model = nn.Transformer(**kwargs)
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in torch_model.state_dict().items()]
    compare_module(model, torch_model, [src, tgt], call=lambda m, a, b: call(lepton if m is model else torch)(m, a, b))


def test_transformer_loads_torch_weights_and_unbatched_input():
    torch.manual_seed(0)
    kwargs = dict(d_model=8, nhead=4, num_encoder_layers=1, num_decoder_layers=2, dim_feedforward=16, dropout=0.0)
    torch_model = torch.nn.Transformer(**kwargs).double()
    model = nn.Transformer(**kwargs).double()
    result = model.load_state_dict({k: lepton.tensor(v.numpy()) for k, v in torch_model.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys
    src, tgt = sample(6, 8), sample(3, 8, seed=2)
    mask = causal(3)
    out = model(lepton.tensor(src), lepton.tensor(tgt), tgt_mask=lepton.tensor(mask))
    with torch.no_grad():
        expected = torch_model(torch.tensor(src), torch.tensor(tgt), tgt_mask=torch.tensor(mask))
    assert_close(out, expected, **TOL[np.float64])


def test_generate_square_subsequent_mask_matches_torch():
    for size in (1, 4):
        mask = nn.Transformer.generate_square_subsequent_mask(size)
        assert_close(mask, torch.nn.Transformer.generate_square_subsequent_mask(size))
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=lepton.float64).dtype == lepton.float64


@pytest.mark.parametrize("config", ["post_norm", "pre_norm_batch_first_gelu"])
def test_decoder_layer_and_decoder_match_torch(config):
    kwargs = dict(dim_feedforward=10, dropout=0.0, **TRANSFORMER_CONFIGS[config])
    batch_first = kwargs.get("batch_first", False)
    tgt = sample(2, 4, 6) if batch_first else sample(4, 2, 6)
    memory = sample(2, 5, 6, seed=3) if batch_first else sample(5, 2, 6, seed=3)
    memory_mask = np.where(sample(4, 5, seed=4) > 1.0, -np.inf, 0.0)

    def call(m, tgt, memory):
        lib = torch if isinstance(tgt, torch.Tensor) else lepton
        return m(tgt, memory, tgt_mask=lib.tensor(causal(4)), memory_mask=lib.tensor(memory_mask))

    compare_module(nn.TransformerDecoderLayer(6, 2, **kwargs), torch.nn.TransformerDecoderLayer(6, 2, **kwargs),
                   [tgt, memory], call=call)
    decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(6, 3, **kwargs), 2, norm=nn.LayerNorm(6))
    torch_decoder = torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(6, 3, **kwargs), 2,
                                                norm=torch.nn.LayerNorm(6))
    compare_module(decoder, torch_decoder, [tgt, memory],
                   call=lambda m, tgt, memory: m(tgt, memory, tgt_mask=type(tgt)(causal(4)) if
                                                 isinstance(tgt, torch.Tensor) else lepton.tensor(causal(4)),
                                                 tgt_is_causal=True))


def test_decoder_layer_causal_hint_alone_equals_the_mask():
    layer = nn.TransformerDecoderLayer(6, 2, 8, dropout=0.0).double()
    tgt, memory = lepton.tensor(sample(4, 2, 6)), lepton.tensor(sample(3, 2, 6, seed=1))
    assert_close(layer(tgt, memory, tgt_is_causal=True), layer(tgt, memory, tgt_mask=lepton.tensor(causal(4))).numpy(),
                 **TOL[np.float64])


def test_transformer_pieces_take_torchs_keywords_and_state_dict_names():
    layer = nn.TransformerEncoderLayer(8, 2, 16)
    encoder = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8), enable_nested_tensor=False, mask_check=False)
    torch_encoder = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2,
                                                norm=torch.nn.LayerNorm(8), enable_nested_tensor=False,
                                                mask_check=False)
    assert list(encoder.state_dict()) == list(torch_encoder.state_dict())
    assert encoder.enable_nested_tensor is False and encoder.mask_check is False
    x = lepton.randn(5, 2, 8)
    encoder.eval()
    assert_close(encoder(x, mask=lepton.tensor(causal(5)).float(), is_causal=True),
                 encoder(x, mask=lepton.tensor(causal(5)).float()).numpy(), rtol=1e-5, atol=1e-6)
    for ours, theirs in ((nn.TransformerDecoderLayer(8, 2, 16), torch.nn.TransformerDecoderLayer(8, 2, 16)),
                         (nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2, 16), 2),
                          torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(8, 2, 16), 2))):
        assert list(ours.state_dict()) == list(theirs.state_dict())
    custom = nn.Transformer(8, 2, custom_encoder=nn.Identity(), custom_decoder=nn.TransformerDecoder(
        nn.TransformerDecoderLayer(8, 2, 16), 1))
    assert not any(k.startswith("encoder.") for k in custom.state_dict())
    with pytest.raises(ValueError, match="batch number of src and tgt"):
        nn.Transformer(8, 2, 1, 1, 16)(lepton.randn(4, 2, 8), lepton.randn(3, 3, 8))
    with pytest.raises(ValueError, match="feature number"):
        nn.Transformer(8, 2, 1, 1, 16)(lepton.randn(4, 2, 8), lepton.randn(3, 2, 6))
    with pytest.raises(ValueError, match="activation should be relu/gelu"):
        nn.TransformerDecoderLayer(8, 2, activation="tanh")
    with pytest.raises(ValueError, match="num_layers"):
        nn.TransformerDecoder(nn.TransformerDecoderLayer(8, 2), 0)


def test_transformer_trains_a_copy_task():
    """A tiny seq2seq Transformer (with learned positions) learns to copy short sequences."""
    lepton.manual_seed(0)
    vocab, d, time = 6, 16, 5
    emb, pos = nn.Embedding(vocab, d), nn.Embedding(time, d)
    model, head = nn.Transformer(d, 2, 1, 1, 32, dropout=0.0), nn.Linear(d, vocab)
    params = [p for m in (emb, pos, model, head) for p in m.parameters()]
    opt = lepton.optim.Adam(params, lr=0.01)
    rng = np.random.default_rng(0)
    mask = nn.Transformer.generate_square_subsequent_mask(time)
    positions = lepton.arange(time).unsqueeze(1)
    for _ in range(80):
        seq = rng.integers(1, vocab, size=(time, 8))
        src = lepton.tensor(seq)
        tgt_in = lepton.tensor(np.concatenate([np.zeros((1, 8), dtype=np.int64), seq[:-1]]))
        logits = head(model(emb(src) + pos(positions), emb(tgt_in) + pos(positions), tgt_mask=mask))
        loss = F.cross_entropy(logits.reshape(-1, vocab), src.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.item()) < 0.3


def test_warnings_do_not_escape_plain_use():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        F.interpolate(lepton.randn(1, 1, 2, 2), scale_factor=2)
        nn.Dropout2d()(lepton.randn(2, 3, 4, 4))
        F.kl_div(lepton.randn(2, 3), lepton.rand(2, 3), reduction="batchmean")

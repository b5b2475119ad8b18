"""lepton.data.transforms: exact checks of the geometric transforms on small synthetic images,
batch vs one-by-one agreement given the same draws, and layout/normalisation arithmetic."""

import numpy as np
import pytest

import lepton
from lepton.data import transforms as T


def _images(n=4, c=2, h=7, w=5, seed=0):
    return np.random.default_rng(seed).integers(1, 255, size=(n, c, h, w)).astype(np.float32)


def _one_by_one(t, x, params):
    return np.concatenate([t.apply(x[i:i + 1], {k: v[i:i + 1] for k, v in params.items()}) for i in range(len(x))])


# ---- ToTensor / Normalize -----------------------------------------------------------------------

@pytest.mark.parametrize("shape,expected", [((5, 6), (1, 5, 6)), ((5, 6, 3), (3, 5, 6)), ((5, 6, 1), (1, 5, 6)),
                                            ((4, 5, 6), (4, 1, 5, 6)), ((4, 5, 6, 3), (4, 3, 5, 6))])
def test_to_tensor_layouts(shape, expected):
    u8 = np.random.default_rng(1).integers(0, 256, size=shape).astype(np.uint8)
    out = T.ToTensor()(u8)
    assert isinstance(out, lepton.Tensor) and out.dtype == lepton.float32 and tuple(out.shape) == expected
    ref = u8.astype(np.float32) / np.float32(255)
    ref = {2: lambda a: a[None], 3: lambda a: a.transpose(2, 0, 1) if shape[-1] in (1, 3) else a[:, None],
           4: lambda a: a.transpose(0, 3, 1, 2)}[len(shape)](ref)
    np.testing.assert_array_equal(out.numpy(), ref)  # exactly x / 255, as torchvision
    assert out.numpy().min() >= 0 and out.numpy().max() <= 1


def test_to_tensor_matches_torch_division():
    torch = pytest.importorskip("torch")
    u8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_array_equal(T.ToTensor()(u8).numpy()[0], torch.from_numpy(u8).float().div(255).numpy())


def test_to_tensor_floats_and_errors():
    f = np.full((3, 4), 0.5, dtype=np.float64)
    np.testing.assert_array_equal(T.ToTensor()(f).numpy(), np.full((1, 3, 4), 0.5, dtype=np.float32))
    t = lepton.rand(1, 3, 3)
    assert T.ToTensor()(t) is t
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 5\)"):
        T.ToTensor()(np.zeros((2, 3, 4, 5), dtype=np.uint8))
    with pytest.raises(TypeError, match="int32"):
        T.ToTensor()(np.zeros((3, 3), dtype=np.int32))


@pytest.mark.parametrize("as_tensor", [False, True])
def test_normalize(as_tensor):
    x = _images(3, 2, 4, 4)
    mean, std = [10.0, 100.0], [2.0, 4.0]
    inp = lepton.from_numpy(x) if as_tensor else x
    out = T.Normalize(mean, std)(inp)
    assert isinstance(out, lepton.Tensor) == as_tensor
    ref = (x - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(np.asarray(out.numpy() if as_tensor else out), ref, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(T.Normalize(mean, std)(x[0])), ref[0], rtol=1e-6)
    scalar = T.Normalize(0.1307, 0.3081)(x)
    np.testing.assert_allclose(scalar, (x - np.float32(0.1307)) / np.float32(0.3081), rtol=1e-6)
    with pytest.raises(ValueError, match="3 means.*2 channels"):
        T.Normalize([0, 0, 0], [1, 1, 1])(x)
    with pytest.raises(ValueError, match="non-zero"):
        T.Normalize([0], [0])


# ---- flips and crops ----------------------------------------------------------------------------

def test_horizontal_flip_exact():
    x = _images()
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=0.0)(x), x)
    t = T.RandomHorizontalFlip(0.5)
    params = {"flip": np.array([True, False, True, False])}
    out = t.apply(x, params)
    np.testing.assert_array_equal(out[[0, 2]], x[[0, 2], ..., ::-1])
    np.testing.assert_array_equal(out[[1, 3]], x[[1, 3]])
    flips = t.get_params(np.random.default_rng(0), 2000, (1, 1))["flip"]
    assert 0.45 < flips.mean() < 0.55


def test_random_crop_exact():
    x = _images(3, 2, 6, 5)
    t = T.RandomCrop((4, 3), padding=2)
    params = {"top": np.array([0, 2, 4]), "left": np.array([0, 3, 6])}
    out = t.apply(x, params)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for i in range(3):
        top, left = params["top"][i], params["left"][i]
        np.testing.assert_array_equal(out[i], padded[i, :, top:top + 4, left:left + 3])
    assert np.all(out[0, :, :2, :] == 0) and np.all(out[2, :, :, -2:] == 0)  # padding is filled with zeros
    np.testing.assert_array_equal(T.RandomCrop((6, 5))(x), x)  # full-size crop without padding
    draws = t.get_params(np.random.default_rng(0), 3000, (6, 5))
    assert draws["top"].min() == 0 and draws["top"].max() == 6 and draws["left"].max() == 6
    with pytest.raises(ValueError, match=r"\(7, 5\) is larger than the padded image \(6, 5\)"):
        T.RandomCrop((7, 5))(x)


# ---- rotations and affine maps ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("hw", [(5, 5), (6, 6), (1, 1)])
def test_rotation_by_right_angles_is_exact(interpolation, hw, dtype):
    x = _images(2, 3, *hw).astype(dtype) + np.asarray(0.1, dtype)  # not integers: any blending shows
    for angle, k in [(90, 1), (-90, -1), (180, 2), (270, 3), (0, 0)]:
        out = T.RandomRotation((angle, angle), interpolation=interpolation)(x)
        np.testing.assert_array_equal(out, np.rot90(x, k, axes=(-2, -1)), err_msg=f"{angle} degrees")


def test_rotation_180_of_non_square_and_single_image():
    x = _images(1, 1, 4, 7)
    np.testing.assert_array_equal(T.RandomRotation((180, 180))(x[0]), x[0, :, ::-1, ::-1])
    np.testing.assert_array_equal(T.RandomRotation((180, 180))(x[0, 0]), x[0, 0, ::-1, ::-1])


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_identity_affine_is_exact(interpolation):
    x = _images(3, 2, 6, 9)
    np.testing.assert_array_equal(T.RandomAffine(0, translate=(0, 0), scale=(1, 1), interpolation=interpolation)(x), x)


def test_affine_translation_exact():
    x = _images(1, 1, 5, 6)
    t = T.RandomAffine(0, translate=(0.5, 0.5))
    out = t.apply(x, {"angle": np.array([0.0]), "tx": np.array([2.0]), "ty": np.array([-1.0])})
    ref = np.zeros_like(x)
    ref[..., 0:4, 2:6] = x[..., 1:5, 0:4]  # content moves right by 2 and up by 1
    np.testing.assert_array_equal(out, ref)
    draws = t.get_params(np.random.default_rng(0), 500, (5, 6))
    assert np.all(draws["tx"] == np.round(draws["tx"])) and np.abs(draws["tx"]).max() <= 3


def test_affine_matches_scipy_bilinear():
    ndimage = pytest.importorskip("scipy.ndimage")
    x = _images(3, 1, 9, 11, seed=3).astype(np.float64)
    t = T.RandomAffine(40, translate=(0.2, 0.2), scale=(0.7, 1.3), interpolation="bilinear")
    params = t.get_params(np.random.default_rng(7), 3, (9, 11))
    out = t.apply(x, params)
    cy, cx = 4.0, 5.0
    for i in range(3):
        th, s = np.deg2rad(params["angle"][i]), params["scale"][i]
        m = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]]) / s  # (row, col) of output -> input
        offset = np.array([cy, cx]) - m @ np.array([cy + params["ty"][i], cx + params["tx"][i]])
        ref = ndimage.affine_transform(x[i, 0], m, offset=offset, order=1, mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(out[i, 0], ref, atol=1e-9)


def test_rotation_keeps_centre_and_fills_corners():
    x = np.ones((1, 1, 9, 9), dtype=np.float32)
    x[0, 0, 4, 4] = 5
    out = T.RandomRotation((45, 45), fill=-1)(x)
    assert out[0, 0, 4, 4] == 5 and out[0, 0, 0, 0] == -1 and out.dtype == np.float32


def test_uint8_bilinear_stays_uint8():
    x = np.random.default_rng(0).integers(0, 256, size=(2, 1, 8, 8)).astype(np.uint8)
    out = T.RandomRotation(30, interpolation="bilinear")(x, rng=np.random.default_rng(0))
    assert out.dtype == np.uint8


# ---- randomness: batch vs one by one, rng plumbing ------------------------------------------------

RANDOM = [T.RandomCrop(5, padding=2), T.RandomHorizontalFlip(0.5), T.RandomRotation(25),
          T.RandomAffine(15, translate=(0.1, 0.2), scale=(0.8, 1.2)),
          T.RandomAffine(15, scale=(0.9, 1.1), interpolation="bilinear")]


@pytest.mark.parametrize("t", RANDOM, ids=repr)
def test_batch_equals_one_by_one_given_same_draws(t):
    x = _images(6, 2, 7, 7)
    params = t.get_params(np.random.default_rng(11), 6, (7, 7))
    np.testing.assert_array_equal(t.apply(x, params), _one_by_one(t, x, params))
    np.testing.assert_array_equal(t(x, rng=np.random.default_rng(11)), t.apply(x, params))
    single = t(x[0], rng=np.random.default_rng(11))  # one image draws what the batch's first image drew
    np.testing.assert_array_equal(single, t.apply(x[:1], t.get_params(np.random.default_rng(11), 1, (7, 7)))[0])


@pytest.mark.parametrize("t", RANDOM, ids=repr)
def test_tensor_input_matches_numpy(t):
    x = _images(3, 1, 7, 7)
    out = t(lepton.from_numpy(x), rng=np.random.default_rng(2))
    assert isinstance(out, lepton.Tensor)
    np.testing.assert_array_equal(out.numpy(), t(x, rng=np.random.default_rng(2)))


def test_compose_passes_rng_and_is_deterministic():
    x = _images(8, 1, 8, 8)
    pipeline = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.RandomRotation(10),
                          T.Normalize([100.0], [50.0])])
    a = pipeline(x, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a, pipeline(x, rng=np.random.default_rng(5)))
    assert not np.array_equal(a, pipeline(x, rng=np.random.default_rng(6)))
    # without rng each transform uses its own Generator seeded with `seed`: fresh instances repeat
    np.testing.assert_array_equal(T.RandomRotation(30, seed=4)(x), T.RandomRotation(30, seed=4)(x))
    assert T.Compose([lambda v: v + 1])(x)[0, 0, 0, 0] == x[0, 0, 0, 0] + 1  # plain callables work too


def test_bad_arguments():
    with pytest.raises(ValueError, match="interpolation"):
        T.RandomRotation(10, interpolation="cubic")
    with pytest.raises(ValueError, match="translate"):
        T.RandomAffine(0, translate=(1.5, 0))
    with pytest.raises(ValueError, match="scale"):
        T.RandomAffine(0, scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="p must be"):
        T.RandomHorizontalFlip(2)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2, 2, 2\)"):
        T.RandomHorizontalFlip()(np.zeros((2, 2, 2, 2, 2)))

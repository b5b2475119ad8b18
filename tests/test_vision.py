"""lepton.vision (torchvision's datasets, transforms and utils): MNIST against its raw idx bytes,
root layouts and offline download, ImageFolder, each transform against PIL / NumPy / torch
references on small images, and make_grid / save_image against a NumPy tiling."""

import colorsys
import gzip
import io
import random
import socket
import struct

import numpy as np
import pytest
from PIL import Image

import lepton
import lepton.vision
from lepton.data import DataLoader
from lepton.datasets import _files, idx as idx_module
from lepton.vision import datasets, transforms as T, utils
from lepton.vision.transforms import functional as F

torch = pytest.importorskip("torch")


def _u8(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape).astype(np.uint8)


def _chw(pil):
    """A PIL image's pixels as [C, H, W]."""
    arr = np.asarray(pil)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _rgb(seed=0, h=9, w=11):
    arr = _u8((h, w, 3), seed)
    return Image.fromarray(arr), lepton.tensor(arr.transpose(2, 0, 1).copy())


def _write_idx(path, arr):
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _raw_idx(name):
    """The decompressed bytes of a bundled MNIST file."""
    with gzip.open(_files.BUNDLED / name) as f:
        return f.read()


# ---- package ----------------------------------------------------------------------------------

def test_package_names():
    assert isinstance(lepton.vision.__version__, str) and lepton.vision.__version__
    assert lepton.vision.datasets is datasets and lepton.vision.transforms is T and lepton.vision.utils is utils
    assert T.functional is F and T.InterpolationMode.BILINEAR.value == "bilinear"


# ---- MNIST / FashionMNIST -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_train(tmp_path_factory):
    return datasets.MNIST(tmp_path_factory.mktemp("empty"), train=True)


def test_mnist_bundled_matches_raw_idx(mnist_train, tmp_path):
    test = datasets.MNIST(tmp_path, train=False)
    assert len(mnist_train) == 60000 and len(test) == 10000
    assert mnist_train.data.dtype == lepton.uint8 and tuple(mnist_train.data.shape) == (60000, 28, 28)
    assert mnist_train.targets.dtype == lepton.int64 and tuple(mnist_train.targets.shape) == (60000,)
    assert mnist_train.classes[0] == "0 - zero" and mnist_train.class_to_idx["9 - nine"] == 9
    img, target = mnist_train[0]
    assert isinstance(img, Image.Image) and img.mode == "L" and img.size == (28, 28)
    assert type(target) is int and target == _raw_idx("train-labels-idx1-ubyte.gz")[8]
    assert img.tobytes() == _raw_idx("train-images-idx3-ubyte.gz")[16:16 + 784]
    last, target = test[-1]
    assert last.tobytes() == _raw_idx("t10k-images-idx3-ubyte.gz")[-784:]
    assert target == _raw_idx("t10k-labels-idx1-ubyte.gz")[-1]
    assert "Number of datapoints: 10000" in repr(test) and "Split: Test" in repr(test)
    with pytest.raises(IndexError):
        test[10000]


def test_mnist_transforms_applied(tmp_path):
    ds = datasets.MNIST(tmp_path, train=False, transform=T.ToTensor(), target_transform=lambda y: y + 100)
    x, y = ds[3]
    raw = np.frombuffer(_raw_idx("t10k-images-idx3-ubyte.gz"), np.uint8, 784, 16 + 3 * 784).reshape(1, 28, 28)
    assert x.dtype == lepton.float32 and tuple(x.shape) == (1, 28, 28)
    np.testing.assert_array_equal(x.numpy(), raw / np.float32(255))
    assert y == _raw_idx("t10k-labels-idx1-ubyte.gz")[8 + 3] + 100
    assert "Transform: ToTensor()" in repr(ds)


def test_mnist_through_dataloader(tmp_path):
    norm = T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(tmp_path, train=False, transform=norm)
    loader = DataLoader(ds, batch_size=32, shuffle=False)
    assert len(loader) == 313
    x, y = next(iter(loader))
    assert x.dtype == lepton.float32 and tuple(x.shape) == (32, 1, 28, 28)
    assert y.dtype == lepton.int64 and tuple(y.shape) == (32,)
    raw = ds.data.numpy()[:32, None].astype(np.float32) / np.float32(255)
    np.testing.assert_allclose(x.numpy(), (raw - np.float32(0.1307)) / np.float32(0.3081), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(y.numpy(), ds.targets.numpy()[:32])
    x01, _ = next(iter(DataLoader(datasets.MNIST(tmp_path, train=False, transform=T.ToTensor()), batch_size=64)))
    assert float(x01.min()) == 0.0 and float(x01.max()) == 1.0


@pytest.mark.parametrize("layout", ["MNIST/raw", ".", "FashionMNIST/raw"])
def test_root_layouts_are_honoured(tmp_path, layout):
    images, labels = _u8((6, 28, 28), seed=1), np.array([3, 1, 4, 1, 5, 9], dtype=np.uint8)
    folder = tmp_path / layout
    folder.mkdir(parents=True, exist_ok=True)
    gz = ".gz" if layout != "." else ""  # torchvision keeps the files uncompressed; both are read
    _write_idx(folder / f"t10k-images-idx3-ubyte{gz}", images)
    _write_idx(folder / f"t10k-labels-idx1-ubyte{gz}", labels)
    cls = datasets.FashionMNIST if layout.startswith("Fashion") else datasets.MNIST
    ds = cls(str(tmp_path), train=False)
    assert len(ds) == 6 and ds.targets.tolist() == labels.tolist()
    np.testing.assert_array_equal(ds.data.numpy(), images)
    assert np.array_equal(np.asarray(ds[2][0]), images[2]) and ds[5][1] == 9
    if cls is datasets.FashionMNIST:
        assert ds.classes[9] == "Ankle boot"
    else:  # the training split is not in root: the bundled copy serves it
        assert len(datasets.MNIST(tmp_path, train=True)) == 60000


def test_data_is_a_private_copy(tmp_path):
    a, b = datasets.MNIST(tmp_path, train=False), datasets.MNIST(tmp_path, train=False)
    a.data.numpy()[0] = 0
    assert int(b.data[0].numpy().max()) == 255


def test_download_true_stays_offline(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("lepton.vision tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    ds = datasets.MNIST(tmp_path / "new", train=False, download=True)
    assert len(ds) == 10000 and not (tmp_path / "new").exists()


def test_missing_and_damaged_datasets_raise(tmp_path, monkeypatch):
    monkeypatch.setattr(idx_module, "FASHION_MNIST_ROOT", str(tmp_path / "absent"))
    with pytest.raises(RuntimeError, match="Lepton does not download.*download=True"):
        datasets.FashionMNIST(tmp_path, train=True, download=True)
    with pytest.raises(RuntimeError, match="dataset-fashion-mnist"):
        datasets.FashionMNIST(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"not an idx file")
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")
    with pytest.raises(ValueError, match="not an idx file"):  # a damaged copy is not silently replaced
        datasets.MNIST(tmp_path, train=False)
    with pytest.raises(ValueError, match="Only transforms or transform/target_transform"):
        datasets.VisionDataset(tmp_path, transforms=lambda x, y: (x, y), transform=T.ToTensor())


# ---- ImageFolder ----------------------------------------------------------------------------------

def test_image_folder(tmp_path):
    pictures = {"dog/b.png": _u8((4, 5, 3), 1), "cat/z.png": _u8((4, 5, 3), 2), "cat/a.PNG": _u8((6, 3, 3), 3),
                "cat/deep/c.png": _u8((2, 2, 3), 4)}
    for name, arr in pictures.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(tmp_path / name)
    Image.fromarray(_u8((3, 3), 5)).save(tmp_path / "dog" / "grey.png")  # mode L, loaded as RGB
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = datasets.ImageFolder(str(tmp_path), transform=T.PILToTensor(), target_transform=lambda y: -y)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    names = ["cat/a.PNG", "cat/z.png", "cat/deep/c.png", "dog/b.png", "dog/grey.png"]
    assert ds.samples == [(str(tmp_path / n), int(n.startswith("dog"))) for n in names] and ds.imgs is ds.samples
    assert ds.targets == [0, 0, 0, 1, 1] and len(ds) == 5
    x, y = ds[1]
    np.testing.assert_array_equal(x.numpy(), pictures["cat/z.png"].transpose(2, 0, 1))
    assert y == 0 and ds[3][1] == -1
    grey = np.asarray(Image.open(tmp_path / "dog" / "grey.png"))
    np.testing.assert_array_equal(ds[4][0].numpy(), np.stack([grey] * 3))
    (tmp_path / "bird").mkdir()
    with pytest.raises(FileNotFoundError, match="Found no valid file for the classes bird"):
        datasets.ImageFolder(tmp_path)
    assert len(datasets.ImageFolder(tmp_path, allow_empty=True)) == 5
    with pytest.raises(FileNotFoundError, match="Couldn't find any class folder"):
        datasets.ImageFolder(tmp_path / "cat" / "deep")


# ---- conversions ----------------------------------------------------------------------------------

def test_to_tensor_rules():
    grey, rgb = _u8((5, 7)), _u8((5, 7, 3), 1)
    cases = [(Image.fromarray(grey), grey[None]), (Image.fromarray(rgb), rgb.transpose(2, 0, 1)), (grey, grey[None]),
             (rgb, rgb.transpose(2, 0, 1)), (rgb[..., :2], rgb[..., :2].transpose(2, 0, 1))]
    for pic, ref in cases:
        out = T.ToTensor()(pic)
        assert out.dtype == lepton.float32 and tuple(out.shape) == ref.shape
        np.testing.assert_array_equal(out.numpy(), torch.from_numpy(ref.copy()).float().div(255).numpy())
    floats = np.random.default_rng(0).normal(size=(4, 3, 2))  # float64, not rescaled, kept float64
    out = T.ToTensor()(floats)
    assert out.dtype == lepton.float64 and np.array_equal(out.numpy(), floats.transpose(2, 0, 1))
    assert T.ToTensor()(np.arange(6, dtype=np.int32).reshape(2, 3)).dtype == lepton.int32
    f_img = Image.fromarray(np.float32([[0.5, 300.0]]), mode="F")
    assert T.ToTensor()(f_img).numpy().tolist() == [[[0.5, 300.0]]]
    bits = Image.fromarray(np.array([[True, False]]))
    assert bits.mode == "1" and T.ToTensor()(bits).numpy().tolist() == [[[1.0, 0.0]]]
    with pytest.raises(TypeError, match="pic should be PIL Image or ndarray"):
        T.ToTensor()([[1, 2]])
    with pytest.raises(ValueError, match="pic should be 2/3 dimensional. Got 4"):
        T.ToTensor()(np.zeros((1, 2, 3, 4), np.uint8))


def test_pil_to_tensor_and_back():
    pil, t = _rgb()
    out = T.PILToTensor()(pil)
    assert out.dtype == lepton.uint8 and np.array_equal(out.numpy(), t.numpy())
    back = T.ToPILImage()(out)
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), np.asarray(pil))
    x = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    img = T.ToPILImage()(lepton.tensor(x))  # floats: x * 255 truncated, as torch's .byte()
    np.testing.assert_array_equal(_chw(img), (x * np.float32(255)).astype(np.uint8))
    assert T.ToPILImage()(lepton.tensor(x[0])).mode == "L"
    assert T.ToPILImage()(lepton.tensor(x[:1])).mode == "L"
    assert T.ToPILImage(mode="F")(lepton.tensor(x[:1])).getpixel((1, 0)) == x[0, 0, 1]
    assert T.ToPILImage()(_u8((3, 4, 4))).mode == "RGBA" and T.ToPILImage()(_u8((3, 4, 2))).mode == "LA"
    assert T.ToPILImage(mode="HSV")(_u8((3, 4, 3))).mode == "HSV"
    assert T.ToPILImage()(np.array([[1, 700]], np.int16)).getpixel((1, 0)) == 700
    with pytest.raises(TypeError, match="PIL Image"):
        T.PILToTensor()(out)
    with pytest.raises(ValueError, match="Incorrect mode"):
        T.ToPILImage(mode="RGB")(_u8((3, 4)))
    with pytest.raises(ValueError, match="Only modes"):
        T.ToPILImage(mode="CMYK")(_u8((3, 4, 3)))
    with pytest.raises(ValueError, match="should not have > 4 channels"):
        T.ToPILImage()(lepton.zeros(5, 2, 2))


def test_convert_image_dtype():
    u = lepton.tensor(_u8((3, 4, 5)))
    f = T.ConvertImageDtype(lepton.float32)(u)
    np.testing.assert_array_equal(f.numpy(), u.numpy().astype(np.float32) / np.float32(255))
    back = T.ConvertImageDtype(lepton.uint8)(f)
    np.testing.assert_array_equal(back.numpy(), (f.numpy() * np.float32(255.999)).astype(np.uint8))
    assert np.array_equal(back.numpy(), u.numpy())
    with pytest.raises(RuntimeError, match="cannot be performed safely"):
        F.convert_image_dtype(f, lepton.int32)


# ---- Normalize, Lambda, Compose -------------------------------------------------------------------

def test_normalize_against_numpy_and_torch():
    x = np.random.default_rng(0).random((2, 3, 4, 5)).astype(np.float32)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = T.Normalize(mean, std)(lepton.tensor(x))
    ref = (x - np.float32(mean)[:, None, None]) / np.float32(std)[:, None, None]
    np.testing.assert_array_equal(out.numpy(), ref)
    tt = torch.tensor(x).sub(torch.tensor(mean).view(-1, 1, 1)).div(torch.tensor(std).view(-1, 1, 1))
    np.testing.assert_array_equal(out.numpy(), tt.numpy())
    x64 = lepton.tensor(x[0].astype(np.float64))
    assert T.Normalize(0.5, 0.25)(x64).dtype == lepton.float64
    np.testing.assert_allclose(T.Normalize(0.5, 0.25)(x64).numpy(), (x[0].astype(np.float64) - 0.5) / 0.25)
    kept = lepton.tensor(x[0])
    T.Normalize(mean, std)(kept)
    assert np.array_equal(kept.numpy(), x[0])
    same = T.Normalize(mean, std, inplace=True)(kept)
    assert np.array_equal(kept.numpy(), ref[0]) and same is kept
    assert repr(T.Normalize(mean, std)) == f"Normalize(mean={mean}, std={std})"
    with pytest.raises(TypeError, match="Input tensor should be a float tensor"):
        T.Normalize(mean, std)(lepton.tensor(_u8((3, 2, 2))))
    with pytest.raises(ValueError, match="Expected tensor to be a tensor image"):
        T.Normalize(0.5, 0.5)(lepton.rand(4, 4))
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize((0.5, 0.5, 0.5), (1.0, 0.0, 1.0))(lepton.rand(3, 2, 2))
    with pytest.raises(ValueError, match="must hold 1 or 3 values"):
        T.Normalize((0.5, 0.5), (1.0, 1.0))(lepton.rand(3, 2, 2))
    with pytest.raises(TypeError, match="img should be Tensor Image"):
        T.Normalize(0.5, 0.5)(Image.fromarray(_u8((2, 2))))


def test_lambda_and_compose():
    pipeline = T.Compose([T.Lambda(lambda img: img.transpose(Image.Transpose.ROTATE_90)), T.PILToTensor(),
                          T.Lambda(lambda t: t[:1])])
    pil, _ = _rgb()
    np.testing.assert_array_equal(pipeline(pil).numpy(), np.rot90(np.asarray(pil))[None, :, :, 0])
    assert repr(T.Compose([T.ToTensor(), T.Normalize(0.5, 0.5)])) == \
        "Compose(\n    ToTensor()\n    Normalize(mean=0.5, std=0.5)\n)"
    with pytest.raises(TypeError, match="lambd should be callable"):
        T.Lambda(3)


# ---- Resize -----------------------------------------------------------------------------------------

def test_resize_pil_matches_pillow():
    pil, _ = _rgb(h=20, w=30)
    out = T.Resize(10)(pil)  # shorter side 20 -> 10, longer 30 -> int(10 * 30 / 20)
    assert out.size == (15, 10)
    assert np.array_equal(np.asarray(out), np.asarray(pil.resize((15, 10), Image.Resampling.BILINEAR)))
    tall = Image.fromarray(_u8((31, 7)))
    assert T.Resize(5)(tall).size == (5, int(5 * 31 / 7)) and T.Resize([5])(tall).size == (5, 22)
    out = T.Resize((8, 13), interpolation=T.InterpolationMode.NEAREST)(pil)
    assert np.array_equal(np.asarray(out), np.asarray(pil.resize((13, 8), Image.Resampling.NEAREST)))
    out = T.Resize((8, 13), interpolation=Image.Resampling.BICUBIC)(pil)  # a Pillow constant is accepted
    assert np.array_equal(np.asarray(out), np.asarray(pil.resize((13, 8), Image.Resampling.BICUBIC)))
    assert T.Resize(10, max_size=12)(pil).size == (12, 8)  # longer side capped: short int(12 * 10 / 15)
    assert T.Resize(20)(pil) is pil  # already that size


@pytest.mark.parametrize("mode", ["bilinear", "bicubic", "nearest", "nearest-exact"])
@pytest.mark.parametrize("antialias", [True, False])
def test_resize_tensor_matches_torch_interpolate(mode, antialias):
    x = np.random.default_rng(0).random((2, 3, 17, 23)).astype(np.float32)
    for size in [(9, 11), (34, 50), (17, 40), (30, 7)]:
        out = T.Resize(size, interpolation=T.InterpolationMode(mode), antialias=antialias)(lepton.tensor(x))
        kwargs = {"align_corners": False, "antialias": antialias} if mode in ("bilinear", "bicubic") else {}
        ref = torch.nn.functional.interpolate(torch.tensor(x), size=size, mode=mode, **kwargs)
        assert out.dtype == lepton.float32 and tuple(out.shape) == tuple(ref.shape)
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=3e-6)


def test_resize_uint8_tensor_follows_pillow():
    pil, t = _rgb(h=20, w=30)
    out = T.Resize(10)(t)
    assert out.dtype == lepton.uint8 and tuple(out.shape) == (3, 10, 15)
    diff = np.abs(out.numpy().astype(int) - _chw(pil.resize((15, 10), Image.Resampling.BILINEAR)).astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.3  # Pillow rounds in fixed point, Lepton in float32
    with pytest.raises(ValueError, match="available for PIL images only"):
        T.Resize(5, interpolation=T.InterpolationMode.LANCZOS)(t)
    with pytest.raises(TypeError, match="Size should be int or sequence"):
        T.Resize(5.0)
    with pytest.raises(ValueError, match="1 or 2 values"):
        T.Resize((1, 2, 3))
    with pytest.raises(TypeError, match="InterpolationMode"):
        T.Resize(5, interpolation="bilinear")
    with pytest.raises(ValueError, match="max_size should only be passed"):
        T.Resize((5, 6), max_size=10)(t)
    with pytest.raises(TypeError, match="img should be PIL Image or Tensor"):
        T.Resize(5)(np.zeros((4, 4)))


# ---- crops, pads and flips -------------------------------------------------------------------------

def test_center_crop():
    pil, t = _rgb(h=9, w=12)
    ref = _chw(pil)
    for size, (top, left) in [((4, 5), (round(2.5), round(3.5))), (3, (3, round(4.5))), ((9, 12), (0, 0))]:
        h, w = (size, size) if isinstance(size, int) else size
        expected = ref[:, top:top + h, left:left + w]
        assert np.array_equal(_chw(T.CenterCrop(size)(pil)), expected)
        assert np.array_equal(T.CenterCrop(size)(t).numpy(), expected)
    big = np.zeros((3, 12, 15), np.uint8)  # padded by (15-12)//2=1 left, (12-9)//2=1 top, then 2 and 2
    big[:, 1:10, 1:13] = ref
    assert np.array_equal(_chw(T.CenterCrop((12, 15))(pil)), big)
    assert np.array_equal(T.CenterCrop((12, 15))(t).numpy(), big)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_pad_against_numpy(mode):
    pil, t = _rgb(h=6, w=7)
    arr = np.asarray(pil)
    for padding, (left, top, right, bottom) in [(2, (2, 2, 2, 2)), ([1, 3], (1, 3, 1, 3)),
                                                ((1, 2, 3, 4), (1, 2, 3, 4)), ([3], (3, 3, 3, 3))]:
        kwargs = {"constant_values": 9} if mode == "constant" else {}
        ref = np.pad(arr, ((top, bottom), (left, right), (0, 0)), mode=mode, **kwargs).transpose(2, 0, 1)
        assert np.array_equal(_chw(T.Pad(padding, fill=9, padding_mode=mode)(pil)), ref)
        assert np.array_equal(T.Pad(padding, fill=9, padding_mode=mode)(t).numpy(), ref)
        batch = lepton.stack([t, t])
        assert np.array_equal(F.pad(batch, padding, 9, mode).numpy(), np.stack([ref, ref]))
    cropped = np.pad(arr[1:, :-2], ((0, 3), (2, 0), (0, 0)), mode=mode).transpose(2, 0, 1)
    assert np.array_equal(_chw(F.pad(pil, [2, -1, -2, 3], 0, mode)), cropped)  # negative padding crops
    assert np.array_equal(F.pad(t, [2, -1, -2, 3], 0, mode).numpy(), cropped)


def test_pad_fill_and_errors():
    pil, t = _rgb(h=3, w=3)
    out = _chw(T.Pad(1, fill=(10, 20, 30))(pil))
    assert out[:, 0, 0].tolist() == [10, 20, 30] and np.array_equal(out[:, 1:4, 1:4], _chw(pil))
    grey = Image.fromarray(_u8((2, 2)))
    assert _chw(T.Pad(1, fill=7)(grey))[0, 0].tolist() == [7, 7, 7, 7]
    with pytest.raises(ValueError, match="does not match the number of channels"):
        T.Pad(1, fill=(1, 2))(pil)
    with pytest.raises(TypeError, match="single number as fill"):
        T.Pad(1, fill=(1, 2, 3))(t)
    with pytest.raises(ValueError, match="1, 2, or 4 element tuple"):
        T.Pad((1, 2, 3))
    with pytest.raises(ValueError, match="Padding mode should be either"):
        T.Pad(1, padding_mode="wrap")
    with pytest.raises(ValueError, match="reflect padding of"):
        T.Pad(3, padding_mode="reflect")(t)


def test_random_crop_draws_from_python_random():
    pil, t = _rgb(h=9, w=11)
    ref = _chw(pil)
    random.seed(123)
    draws = [(random.randint(0, 9 - 4), random.randint(0, 11 - 5)) for _ in range(6)]
    random.seed(123)
    outs = [T.RandomCrop((4, 5))(img) for img in (pil, t, pil, t, pil, t)]
    for out, (top, left) in zip(outs, draws):
        assert np.array_equal(_chw(out) if isinstance(out, Image.Image) else out.numpy(),
                              ref[:, top:top + 4, left:left + 5])
    assert len(set(draws)) > 1
    random.seed(5)
    top, left, h, w = T.RandomCrop.get_params(t, (4, 5))
    random.seed(5)
    assert np.array_equal(T.RandomCrop((4, 5))(t).numpy(), ref[:, top:top + h, left:left + w])
    padded = np.pad(ref, ((0, 0), (2, 2), (2, 2)))
    random.seed(7)
    out = T.RandomCrop(9, padding=2)(t)
    random.seed(7)
    top, left = random.randint(0, 13 - 9), random.randint(0, 15 - 9)
    assert np.array_equal(out.numpy(), padded[:, top:top + 9, left:left + 9])
    grown = T.RandomCrop((12, 11), pad_if_needed=True, fill=255)(pil)  # rows padded 3 at top and bottom
    assert _chw(grown).shape == (3, 12, 11) and _chw(grown).sum() > ref.sum()
    with pytest.raises(ValueError, match="larger than input image size"):
        T.RandomCrop(10)(t)


def test_flips():
    pil, t = _rgb()
    ref = _chw(pil)
    for cls, axis in [(T.RandomHorizontalFlip, 2), (T.RandomVerticalFlip, 1)]:
        assert np.array_equal(_chw(cls(p=1.0)(pil)), np.flip(ref, axis))
        assert np.array_equal(cls(p=1.0)(t).numpy(), np.flip(ref, axis))
        assert cls(p=0.0)(t) is t
        random.seed(3)
        expected = [random.random() < 0.5 for _ in range(8)]
        random.seed(3)
        flipped = [not np.array_equal(cls()(t).numpy(), ref) for _ in range(8)]
        assert flipped == expected and any(expected) and not all(expected)
    batch = lepton.tensor(np.stack([ref, ref + 1]))
    assert np.array_equal(F.hflip(batch).numpy(), np.flip(batch.numpy(), 3))


# ---- rotation and resized crops -------------------------------------------------------------------------

def test_rotation():
    pil, t = _rgb(h=11, w=11)
    ref = _chw(pil)
    for interpolation in (T.InterpolationMode.NEAREST, T.InterpolationMode.BILINEAR):
        for angle, k in [(90, 1), (180, 2), (-90, 3)]:
            rot = T.RandomRotation((angle, angle), interpolation=interpolation)
            expected = np.rot90(ref, k, axes=(1, 2))  # counter-clockwise
            assert np.array_equal(_chw(rot(pil)), expected) and np.array_equal(rot(t).numpy(), expected)
    rot = T.RandomRotation((30, 30))
    assert np.array_equal(rot(t).numpy(), _chw(rot(pil)))  # nearest: the same pixels as Pillow
    bilinear = T.RandomRotation((30, 30), interpolation=T.InterpolationMode.BILINEAR)
    inside = F.rotate(lepton.ones(1, 11, 11), 30, T.InterpolationMode.BILINEAR).numpy()[0] == 1
    diff = np.abs(bilinear(t).numpy().astype(int) - _chw(bilinear(pil)).astype(int))[:, inside]
    assert inside.sum() > 40 and diff.max() <= 1  # away from the edges, where each fills its own way
    filled = T.RandomRotation((45, 45), fill=200)(t).numpy()
    assert filled[:, 0, 0].tolist() == [200, 200, 200]
    assert T.RandomRotation((45, 45), fill=(1, 2, 3))(t).numpy()[:, 0, 0].tolist() == [1, 2, 3]
    assert T.RandomRotation((90, 90), expand=True)(Image.fromarray(_u8((4, 9)))).size == (4, 9)
    random.seed(11)
    angle = random.uniform(-20.0, 20.0)
    random.seed(11)
    assert T.RandomRotation.get_params([-20.0, 20.0]) == angle
    with pytest.raises(ValueError, match="for PIL images only"):
        T.RandomRotation(10, expand=True)(t)
    with pytest.raises(ValueError, match="must be positive"):
        T.RandomRotation(-5)


def test_random_resized_crop():
    pil, t = _rgb(h=20, w=30)
    # no admissible draw (a square of the whole area does not fit): the central square is used
    out = T.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0))(t)
    np.testing.assert_array_equal(out.numpy(), F.resize(F.center_crop(t, 20), [8, 8]).numpy())
    assert T.RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(1.0, 1.0))(pil).size == (8, 8)
    random.seed(0)
    for _ in range(50):
        top, left, h, w = T.RandomResizedCrop.get_params(t, (0.2, 0.6), (0.5, 2.0))
        assert 0 <= top <= 20 - h and 0 <= left <= 30 - w
        assert 0.2 * 600 - 60 <= h * w <= 0.6 * 600 + 60 and 0.5 - 0.2 <= w / h <= 2.0 + 0.5
    random.seed(4)
    top, left, h, w = T.RandomResizedCrop.get_params(pil, (0.08, 1.0), (3 / 4, 4 / 3))
    random.seed(4)
    out = T.RandomResizedCrop((6, 7))(pil)
    assert np.array_equal(np.asarray(out), np.asarray(pil.crop((left, top, left + w, top + h)).resize((7, 6), 2)))


# ---- colour ----------------------------------------------------------------------------------------------

def _grey_ref(x):
    return 0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]


def test_colour_adjustments_against_numpy():
    x = np.random.default_rng(0).random((3, 5, 6)).astype(np.float32)
    t = lepton.tensor(x)
    np.testing.assert_allclose(F.adjust_brightness(t, 1.4).numpy(), np.clip(1.4 * x, 0, 1), rtol=1e-6)
    mean = _grey_ref(x).mean()
    np.testing.assert_allclose(F.adjust_contrast(t, 0.3).numpy(), np.clip(0.3 * x + 0.7 * mean, 0, 1), rtol=1e-5)
    np.testing.assert_allclose(F.adjust_saturation(t, 1.8).numpy(), np.clip(1.8 * x - 0.8 * _grey_ref(x), 0, 1),
                               rtol=1e-5, atol=1e-6)
    hue = F.adjust_hue(t, 0.3).numpy()
    ref = np.array([[colorsys.hsv_to_rgb((colorsys.rgb_to_hsv(*x[:, i, j])[0] + 0.3) % 1.0,
                                         *colorsys.rgb_to_hsv(*x[:, i, j])[1:]) for j in range(6)] for i in range(5)])
    np.testing.assert_allclose(hue, ref.transpose(2, 0, 1), atol=1e-5)
    u8 = lepton.tensor(_u8((3, 5, 6)))  # integer images are truncated back to uint8, as torchvision
    np.testing.assert_array_equal(F.adjust_brightness(u8, 0.7).numpy(),
                                  np.clip(np.float32(0.7) * u8.numpy(), 0, 255).astype(np.uint8))


def test_colour_adjustments_pil_and_tensor_agree():
    pil, t = _rgb(h=8, w=8)
    for fn, factor in [(F.adjust_brightness, 1.3), (F.adjust_contrast, 0.6), (F.adjust_saturation, 1.7)]:
        diff = np.abs(fn(t, factor).numpy().astype(int) - _chw(fn(pil, factor)).astype(int))
        assert diff.max() <= 1, fn.__name__  # Pillow rounds, torchvision's tensor path truncates
    diff = np.abs(F.adjust_hue(t, 0.25).numpy().astype(int) - _chw(F.adjust_hue(pil, 0.25)).astype(int))
    assert diff.mean() < 3 and diff.max() <= 16  # Pillow's HSV holds hue in 8 bits
    grey = Image.fromarray(_u8((3, 3)))
    assert F.adjust_hue(grey, 0.3) is grey


def test_color_jitter():
    pil, t = _rgb()
    assert np.array_equal(T.ColorJitter(brightness=(1.5, 1.5))(t).numpy(), F.adjust_brightness(t, 1.5).numpy())
    assert np.array_equal(np.asarray(T.ColorJitter(contrast=(0.5, 0.5))(pil)),
                          np.asarray(F.adjust_contrast(pil, 0.5)))
    assert T.ColorJitter()(t) is t and T.ColorJitter(brightness=0).brightness is None
    assert T.ColorJitter(brightness=0.4).brightness == (0.6, 1.4) and T.ColorJitter(hue=0.1).hue == (-0.1, 0.1)
    random.seed(2)
    order, b, c, s, h = T.ColorJitter.get_params((0.5, 1.5), (0.5, 1.5), None, (-0.1, 0.1))
    assert sorted(order) == [0, 1, 2, 3] and 0.5 <= b <= 1.5 and s is None and -0.1 <= h <= 0.1
    random.seed(2)
    jitter = T.ColorJitter(brightness=0.5, contrast=0.5, hue=0.1)
    out, expected = jitter(pil), pil
    for k in order:
        expected = {0: lambda i: F.adjust_brightness(i, b), 1: lambda i: F.adjust_contrast(i, c),
                    3: lambda i: F.adjust_hue(i, h)}.get(k, lambda i: i)(expected)
    assert np.array_equal(np.asarray(out), np.asarray(expected))
    with pytest.raises(ValueError, match="must be non negative"):
        T.ColorJitter(brightness=-1)
    with pytest.raises(ValueError, match="hue values should be between"):
        T.ColorJitter(hue=0.6)
    with pytest.raises(TypeError, match="single number or a list/tuple"):
        T.ColorJitter(contrast=(1, 2, 3))
    with pytest.raises(TypeError, match="permitted channel values"):
        F.adjust_brightness(lepton.rand(2, 3, 3), 1.2)


def test_grayscale():
    pil, t = _rgb()
    x = t.numpy()
    g = T.Grayscale()(t)
    assert g.dtype == lepton.uint8 and tuple(g.shape) == (1, 9, 11)
    np.testing.assert_array_equal(g.numpy()[0], (np.float32(0.2989) * x[0] + np.float32(0.587) * x[1]
                                                 + np.float32(0.114) * x[2]).astype(np.uint8))
    assert np.array_equal(np.asarray(T.Grayscale()(pil)), np.asarray(pil.convert("L")))
    three = T.Grayscale(num_output_channels=3)(pil)
    assert three.mode == "RGB" and np.array_equal(_chw(three), np.stack([np.asarray(pil.convert("L"))] * 3))
    assert np.array_equal(T.Grayscale(3)(t).numpy(), np.concatenate([g.numpy()] * 3))
    assert T.RandomGrayscale(p=1.0)(pil).mode == "RGB" and tuple(T.RandomGrayscale(p=1.0)(t).shape) == (3, 9, 11)
    assert T.RandomGrayscale(p=0.0)(t) is t
    with pytest.raises(ValueError, match="num_output_channels should be either 1 or 3"):
        T.Grayscale(2)(pil)


def test_augmentations_reproducible_with_random_seed():
    pil, _ = _rgb(h=16, w=16)
    pipeline = T.Compose([T.RandomResizedCrop(10), T.RandomHorizontalFlip(), T.RandomRotation(15),
                          T.ColorJitter(0.3, 0.3, 0.3, 0.05), T.RandomApply([T.Grayscale(3)], p=0.5), T.ToTensor()])
    runs = []
    for seed in (0, 0, 1):
        random.seed(seed)
        lepton.manual_seed(seed + 100)  # Lepton's generator plays no part
        runs.append(np.concatenate([pipeline(pil).numpy() for _ in range(4)]))
    assert np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_augmentations_in_worker_threads_follow_the_loader_seed():
    images = [Image.fromarray(_u8((12, 12), seed)) for seed in range(16)]

    class Pictures(datasets.VisionDataset):
        def __getitem__(self, i):
            return self.transform(images[i]), i

        def __len__(self):
            return len(images)

    ds = Pictures(transform=T.Compose([T.RandomCrop(8), T.RandomHorizontalFlip(), T.ToTensor()]))

    def epoch(seed):
        random.seed(seed)  # the main thread's stream is not what workers draw from
        loader = DataLoader(ds, batch_size=2, num_workers=3, seed=seed)
        return np.concatenate([x.numpy() for x, _ in loader])

    first = epoch(1)
    assert first.shape == (16, 1, 8, 8)
    assert np.array_equal(first, epoch(1)) and not np.array_equal(first, epoch(2))
    random.seed(1)
    inline = np.concatenate([x.numpy() for x, _ in DataLoader(ds, batch_size=2, seed=1)])  # draws from `random`
    random.seed(1)
    assert np.array_equal(inline, np.stack([ds[i][0].numpy() for i in range(16)]))


# ---- make_grid / save_image --------------------------------------------------------------------------------

def _grid_ref(batch, nrow, padding, pad_value):
    """The tiling, written out cell by cell."""
    n, c, h, w = batch.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.full((c, rows * (h + padding) + padding, cols * (w + padding) + padding), pad_value, batch.dtype)
    for k in range(n):
        y, x = divmod(k, cols)
        top, left = y * (h + padding) + padding, x * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = batch[k]
    return grid


def test_make_grid_layout():
    x = np.random.default_rng(0).random((5, 3, 4, 6)).astype(np.float32)
    for nrow, padding, pad_value in [(2, 2, 0.5), (8, 0, 0.0), (3, 1, 1.0), (1, 3, 0.25)]:
        out = utils.make_grid(lepton.tensor(x), nrow=nrow, padding=padding, pad_value=pad_value)
        np.testing.assert_array_equal(out.numpy(), _grid_ref(x, nrow, padding, pad_value))
    grey = x[:, :1]
    out = utils.make_grid([lepton.tensor(g) for g in grey], nrow=4)  # a list; one channel becomes three
    np.testing.assert_array_equal(out.numpy(), _grid_ref(np.repeat(grey, 3, axis=1), 4, 2, 0.0))
    single = utils.make_grid(lepton.tensor(x[0, 0]))  # one image: no padding
    np.testing.assert_array_equal(single.numpy(), np.stack([x[0, 0]] * 3))
    with pytest.raises(TypeError, match="tensor or list of tensors expected"):
        utils.make_grid(x)
    with pytest.raises(TypeError, match="tensor or list of tensors expected, got a list containing"):
        utils.make_grid([lepton.tensor(x[0]), x[1]])


def test_make_grid_normalize():
    x = np.random.default_rng(1).normal(size=(3, 3, 2, 2)).astype(np.float32)
    out = utils.make_grid(lepton.tensor(x), normalize=True, padding=0).numpy()
    np.testing.assert_allclose(out, _grid_ref((x - x.min()) / (x.max() - x.min()), 8, 0, 0.0), rtol=1e-6, atol=1e-7)
    out = utils.make_grid(lepton.tensor(x), normalize=True, value_range=(-1.0, 1.0), padding=0).numpy()
    np.testing.assert_allclose(out, _grid_ref((np.clip(x, -1, 1) + 1) / 2, 8, 0, 0.0), rtol=1e-6, atol=1e-7)
    each = (x - x.min(axis=(1, 2, 3), keepdims=True)) / np.ptp(x, axis=(1, 2, 3), keepdims=True)
    out = utils.make_grid(lepton.tensor(x), normalize=True, scale_each=True, padding=0).numpy()
    np.testing.assert_allclose(out, _grid_ref(each, 8, 0, 0.0), rtol=1e-6, atol=1e-7)
    with pytest.raises(TypeError, match="value_range has to be a tuple"):
        utils.make_grid(lepton.tensor(x), normalize=True, value_range=[0, 1])


def test_save_image_round_trip(tmp_path):
    x = np.random.default_rng(2).random((4, 3, 5, 7)).astype(np.float32)
    x[0, 0, 0, :3] = [-0.5, 1.5, 0.998]  # clamped; rounded to nearest
    utils.save_image(lepton.tensor(x), tmp_path / "grid.png", nrow=2)
    back = Image.open(tmp_path / "grid.png")
    assert back.format == "PNG" and back.mode == "RGB"
    grid = _grid_ref(x, 2, 2, 0.0)
    expected = np.clip(grid * np.float32(255) + np.float32(0.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(np.asarray(back), expected)
    assert np.asarray(back)[2, 2:5, 0].tolist() == [0, 255, 254]
    buffer = io.BytesIO()
    utils.save_image([lepton.tensor(x[1, :1])], buffer, format="PNG")  # a file object, one grey image
    single = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    np.testing.assert_array_equal(single[..., 0], (x[1, 0] * np.float32(255) + np.float32(0.5)).astype(np.uint8))
    assert single.shape == (5, 7, 3)

"""torchvision.utils' make_grid and save_image for Lepton tensors (images in [0, 1])."""

import math

from PIL import Image

import lepton
import lepton.nn.functional as F
from lepton import Tensor

__all__ = ["make_grid", "save_image"]


def _as_batch(tensor):
    """A 4-d batch [N, C, H, W] from a tensor [N, C, H, W] / [C, H, W] / [H, W] or a list of
    tensors; single-channel images become 3 equal channels."""
    if isinstance(tensor, list):
        for t in tensor:
            if not isinstance(t, Tensor):
                raise TypeError(f"tensor or list of tensors expected, got a list containing {type(t)}")
        tensor = lepton.stack(tensor, dim=0)
    elif not isinstance(tensor, Tensor):
        raise TypeError(f"tensor or list of tensors expected, got {type(tensor)}")
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim == 3:
        tensor = (lepton.cat([tensor] * 3, 0) if tensor.shape[0] == 1 else tensor).unsqueeze(0)
    if tensor.ndim != 4:
        raise ValueError(f"make_grid: expected images [N, C, H, W], [C, H, W] or [H, W], got shape "
                         f"{tuple(tensor.shape)}")
    return lepton.cat([tensor] * 3, 1) if tensor.shape[1] == 1 else tensor


def _rescaled(t, value_range):
    """t clamped to value_range (default t's own min and max) and mapped onto [0, 1]."""
    low, high = value_range if value_range is not None else (float(t.min()), float(t.max()))
    return (t.clamp(low, high) - low) / max(high - low, 1e-5)


def make_grid(tensor, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False, pad_value=0.0):
    """Tile a batch of images into one image [C, rows * (H + padding) + padding, cols * (W + padding)
    + padding], nrow images per row, the gaps and unused cells filled with pad_value. With
    normalize, values are first mapped from value_range (default: min and max of the batch, or of
    each image with scale_each) onto [0, 1]. A batch of one image is returned without padding."""
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"make_grid: nrow must be a positive int, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"make_grid: padding must be a non-negative int, got {padding!r}")
    batch = _as_batch(tensor)
    if normalize:
        if value_range is not None and not isinstance(value_range, tuple):
            raise TypeError("value_range has to be a tuple (min, max) if specified. min and max are numbers")
        if scale_each:
            batch = lepton.stack([_rescaled(image, value_range) for image in batch.unbind(0)], dim=0)
        else:
            batch = _rescaled(batch, value_range)
    n, c, h, w = (int(s) for s in batch.shape)
    if n == 1:
        return batch.squeeze(0)
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    if rows * cols > n:
        blank = lepton.full((rows * cols - n, c, h, w), pad_value, dtype=batch.dtype, device=batch.device)
        batch = lepton.cat([batch, blank], 0)
    cells = F.pad(batch, (padding, 0, padding, 0), value=pad_value)  # each image with its top-left gap
    grid = cells.reshape(rows, cols, c, h + padding, w + padding).permute(2, 0, 3, 1, 4)
    grid = grid.reshape(c, rows * (h + padding), cols * (w + padding))
    return F.pad(grid, (0, padding, 0, padding), value=pad_value)


def save_image(tensor, fp, format=None, nrow=8, padding=2, normalize=False, value_range=None, scale_each=False,
               pad_value=0.0):
    """Write make_grid(tensor, ...) as an image file (PNG, or what fp's extension or format names):
    values in [0, 1] become round(255 x), clamped to 0..255. fp: a path or a binary file object."""
    grid = make_grid(tensor, nrow=nrow, padding=padding, normalize=normalize, value_range=value_range,
                     scale_each=scale_each, pad_value=pad_value)
    pixels = (grid.detach() * 255 + 0.5).clamp(0, 255).permute(1, 2, 0).to(device="cpu", dtype=lepton.uint8)
    Image.fromarray(pixels.numpy()).save(fp, format=format)

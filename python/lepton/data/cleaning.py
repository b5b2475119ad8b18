"""Cleaning helpers for tabular NumPy data: drop or impute missing values (NaN), standardise columns.

Statistics are per column of a 2-d array [samples, features] (a 1-d array is one column) and
ignore NaNs, so they can be computed before imputation. Fit on the training split and apply the
fitted object to the others (SimpleImputer, StandardScaler), as scikit-learn does.
"""

import numpy as np

__all__ = ["drop_nan_rows", "impute_nan", "standardize", "SimpleImputer", "StandardScaler"]


def _table(x, who):
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise ValueError(f"{who}: expected a 1-d or 2-d array [samples, features], got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{who}: expected a numeric array, got dtype {x.dtype}")
    return x


def _nan_rows(a):
    if a.dtype.kind != "f":
        return np.zeros(len(a), dtype=bool)
    return np.isnan(a).reshape(len(a), -1).any(axis=1)


def drop_nan_rows(x, y=None):
    """x without the rows that hold a NaN (in x, or in y when given); returns x or (x, y)."""
    x = _table(x, "drop_nan_rows")
    bad = _nan_rows(x)
    if y is not None:
        y = np.asarray(y)
        if len(y) != len(x):
            raise ValueError(f"drop_nan_rows: x has {len(x)} rows, y has {len(y)}")
        bad |= _nan_rows(y)
        return x[~bad], y[~bad]
    return x[~bad]


class SimpleImputer:
    """Replace NaNs column by column with the column's mean or median (NaNs ignored), or a constant."""

    def __init__(self, strategy="mean", fill_value=0.0):
        if strategy not in ("mean", "median", "constant"):
            raise ValueError(f"SimpleImputer: strategy must be 'mean', 'median' or 'constant', got {strategy!r}")
        self.strategy, self.fill_value = strategy, fill_value
        self.statistics_ = None

    def fit(self, x):
        x = _table(x, "SimpleImputer.fit").astype(np.float64)
        cols = x.reshape(len(x), -1)
        if self.strategy == "constant":
            self.statistics_ = np.full(cols.shape[1], float(self.fill_value))
        else:
            empty = np.isnan(cols).all(axis=0)
            if empty.any():
                raise ValueError(f"SimpleImputer: column(s) {np.flatnonzero(empty).tolist()} have no values to "
                                 f"take a {self.strategy} of; use strategy='constant'")
            self.statistics_ = (np.nanmean if self.strategy == "mean" else np.nanmedian)(cols, axis=0)
        return self

    def transform(self, x):
        if self.statistics_ is None:
            raise RuntimeError("SimpleImputer.transform called before fit")
        x = _table(x, "SimpleImputer.transform")
        cols = x.reshape(len(x), -1)
        if cols.shape[1] != self.statistics_.size:
            raise ValueError(f"SimpleImputer: fitted on {self.statistics_.size} columns, got shape {x.shape}")
        if x.dtype.kind != "f":
            return x.copy()
        out = np.where(np.isnan(cols), self.statistics_.astype(x.dtype), cols)
        return out.reshape(x.shape)

    def fit_transform(self, x):
        return self.fit(x).transform(x)


def impute_nan(x, strategy="mean", value=0.0):
    """x with each NaN replaced by its column's mean or median, or by `value` (strategy='constant')."""
    return SimpleImputer(strategy, fill_value=value).fit_transform(x)


class StandardScaler:
    """(x - mean) / std per column; a constant column (std 0) is only centred, as scikit-learn does."""

    def __init__(self):
        self.mean_ = self.scale_ = None

    def fit(self, x):
        x = _table(x, "StandardScaler.fit").astype(np.float64)
        cols = x.reshape(len(x), -1)
        if len(cols) == 0:
            raise ValueError("StandardScaler: can't fit on an empty array")
        self.mean_ = np.nanmean(cols, axis=0)
        std = np.nanstd(cols, axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    def transform(self, x):
        if self.mean_ is None:
            raise RuntimeError("StandardScaler.transform called before fit")
        x = _table(x, "StandardScaler.transform")
        cols = x.reshape(len(x), -1)
        if cols.shape[1] != self.mean_.size:
            raise ValueError(f"StandardScaler: fitted on {self.mean_.size} columns, got shape {x.shape}")
        dtype = x.dtype if x.dtype.kind == "f" else np.float32
        return ((cols - self.mean_) / self.scale_).astype(dtype).reshape(x.shape)

    def fit_transform(self, x):
        return self.fit(x).transform(x)


def standardize(x, mean=None, std=None):
    """Columns of x scaled to mean 0 and std 1 (NaNs ignored, kept); pass `mean` and `std` (e.g. the
    training split's) to apply given statistics instead."""
    if mean is None and std is None:
        return StandardScaler().fit_transform(x)
    if mean is None or std is None:
        raise ValueError("standardize: give both mean and std, or neither")
    x = _table(x, "standardize")
    std = np.asarray(std, dtype=np.float64)
    if np.any(std == 0):
        raise ValueError("standardize: std must be non-zero")
    dtype = x.dtype if x.dtype.kind == "f" else np.float32
    return ((x - np.asarray(mean, dtype=np.float64)) / std).astype(dtype)

"""lepton.data: datasets, the DataLoader, image transforms and tabular cleaning helpers
(PyTorch's torch.utils.data names; transforms after torchvision)."""

from lepton.data import transforms
from lepton.data.cleaning import SimpleImputer, StandardScaler, drop_nan_rows, impute_nan, standardize
from lepton.data.collate import default_collate
from lepton.data.dataset import Dataset, Subset, TensorDataset, random_split
from lepton.data.loader import DataLoader

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate", "transforms",
           "drop_nan_rows", "impute_nan", "standardize", "SimpleImputer", "StandardScaler"]

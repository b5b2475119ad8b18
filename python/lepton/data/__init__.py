"""lepton.data: torch.utils.data (datasets, samplers, the DataLoader, collation, worker info),
plus image transforms (torchvision's names) and tabular cleaning helpers."""

from lepton.data import transforms
from lepton.data.cleaning import SimpleImputer, StandardScaler, drop_nan_rows, impute_nan, standardize
from lepton.data.collate import default_collate, default_convert
from lepton.data.dataset import (ChainDataset, ConcatDataset, Dataset, IterableDataset, StackDataset, Subset,
                                 TensorDataset, random_split)
from lepton.data.loader import DataLoader
from lepton.data.sampler import (BatchSampler, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
                                 WeightedRandomSampler)
from lepton.data.worker import WorkerInfo, get_worker_info
from lepton.distributed.sampler import DistributedSampler

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "ConcatDataset", "ChainDataset", "StackDataset", "Subset",
           "random_split", "DataLoader", "default_collate", "default_convert", "get_worker_info", "WorkerInfo",
           "Sampler", "SequentialSampler", "RandomSampler", "SubsetRandomSampler", "WeightedRandomSampler",
           "BatchSampler", "DistributedSampler", "transforms",
           "drop_nan_rows", "impute_nan", "standardize", "SimpleImputer", "StandardScaler"]

"""Which Lepton module answers each torch / torchvision module name under `lepton run`.

ALIASES: the torch module *is* this Lepton module (same object, same classes).
VIEWS: torch module paths that only re-export names (torch.nn.modules.conv, ...): a module whose
attributes are looked up in the given Lepton modules, in order; every submodule below a view is
the same kind of view, looking first in the Lepton modules of the same path where they exist
(torch.nn.modules.linear: lepton.nn.modules.linear, then lepton.nn, lepton.nn.modules).
Anything else under torch/torchvision is not provided, and importing it says so.
"""

ALIASES = {
    "torch": "lepton",
    "torch.nn": "lepton.nn",
    "torch.nn.functional": "lepton.nn.functional",
    "torch.nn.init": "lepton.nn.init",
    "torch.nn.utils": "lepton.nn.utils",
    "torch.nn.parameter": "lepton.nn.parameter",
    "torch.optim": "lepton.optim",
    "torch.optim.lr_scheduler": "lepton.optim.lr_scheduler",
    "torch.optim.optimizer": "lepton.optim.optimizer",
    "torch.utils": "lepton.utils",
    "torch.utils.data": "lepton.data",
    "torch.utils.checkpoint": "lepton.utils.checkpoint",
    "torch.serialization": "lepton.serialization",
    "torch.amp": "lepton.amp",
    "torch.cuda": "lepton.cuda",
    "torch.cpu": "lepton.cpu",
    "torch.cuda.amp": "lepton.amp.cuda_amp",
    "torch.backends": "lepton.backends",
    "torch.backends.cuda": "lepton.backends.cuda",
    "torch.backends.cudnn": "lepton.backends.cudnn",
    "torch.backends.mps": "lepton.backends.mps",
    "torch.backends.mkldnn": "lepton.backends.mkldnn",
    "torch.backends.openmp": "lepton.backends.openmp",
    "torch.distributed": "lepton.distributed",
    "torch.distributed.optim": "lepton.distributed.optim",
    "torch.autograd": "lepton.autograd",
    "torch.testing": "lepton.testing",
    "torch.onnx": "lepton.onnx",
    "torch.jit": "lepton.jit",
    "torch.accelerator": "lepton.accelerator",
    "torchvision": "lepton.vision",
    "torchvision.datasets": "lepton.vision.datasets",
    "torchvision.transforms": "lepton.vision.transforms",
    "torchvision.transforms.functional": "lepton.vision.transforms.functional",
    "torchvision.transforms.transforms": "lepton.vision.transforms.transforms",
    "torchvision.datasets.folder": "lepton.vision.datasets.folder",
    "torchvision.datasets.mnist": "lepton.vision.datasets.mnist",
    "torchvision.datasets.vision": "lepton.vision.datasets.vision",
    "torchvision.utils": "lepton.vision.utils",
    "torchvision.models": "lepton.vision.models",
    "torchvision.models.resnet": "lepton.vision.models.resnet",
    "torchvision.models.vgg": "lepton.vision.models.vgg",
    "torchvision.models.alexnet": "lepton.vision.models.alexnet",
    "torchvision.models.mobilenetv2": "lepton.vision.models.mobilenetv2",
    "torchvision.models.mobilenet": "lepton.vision.models.mobilenetv2",
}

VIEWS = {
    "torch.nn.modules": ("lepton.nn", "lepton.nn.modules"),
    "torch.nn.parallel": ("lepton.distributed",),
    "torch.utils.data.dataloader": ("lepton.data",),
    "torch.utils.data.dataset": ("lepton.data",),
    "torch.utils.data.sampler": ("lepton.data",),
    "torch.utils.data.distributed": ("lepton.distributed",),
    "torch.autograd.grad_mode": ("lepton.autograd",),
    "torch.autograd.function": ("lepton.autograd",),
    "torch.random": ("lepton",),
    "torch.types": ("lepton",),
}

# The submodules torch itself imports under a view, so scripts reach them as attributes
# (torch.nn.modules.activation.MultiheadAttention) without importing them: views of their own.
VIEW_SUBMODULES = {
    "torch.nn.modules": frozenset({
        "activation", "adaptive", "batchnorm", "channelshuffle", "container", "conv", "distance", "dropout",
        "flatten", "fold", "instancenorm", "lazy", "linear", "loss", "module", "normalization", "padding",
        "pixelshuffle", "pooling", "rnn", "sparse", "transformer", "upsampling", "utils"}),
}

# What to use instead, for torch modules people reach for that Lepton does not have.
_INSTEAD = {
    "torch.hub": "there are no downloads: load weights with lepton.load from a local file",
    "torch.distributions": "sample with lepton.multinomial, lepton.randn, lepton.rand",
    "torch.multiprocessing": "use Python's multiprocessing; DataLoader(num_workers=...) works without it",
    "torch.profiler": "time with time.perf_counter and `lepton bench`",
    "torch.fx": "Lepton runs eagerly and has no graph capture",
    "torch._dynamo": "torch.compile returns the model unchanged under Lepton",
}


def resolve(fullname):
    """("alias", lepton module name), ("view", lepton module names) or ("missing", what to do instead)."""
    if fullname in ALIASES:
        return "alias", ALIASES[fullname]
    parts = fullname.split(".")
    for end in range(len(parts), 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in VIEWS:  # below a view, the Lepton module of the same path (if any) answers first
            below = fullname[len(prefix):]
            return "view", tuple(s + below for s in VIEWS[prefix] if below) + VIEWS[prefix]
    for end in range(len(parts), 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in _INSTEAD:
            return "missing", _INSTEAD[prefix]
    return "missing", "see `lepton run --help` for what is covered"

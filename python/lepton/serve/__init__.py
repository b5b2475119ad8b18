"""lepton.serve: an HTTP inference server with micro-batching and Prometheus metrics.

    lepton serve CHECKPOINT [--host 127.0.0.1] [--port 8000]

or in Python: InferenceServer(Servable(model, input_shape)).start().
"""

from lepton.serve.batcher import MicroBatcher
from lepton.serve.metrics import Metrics
from lepton.serve.servable import Servable, load_servable, servable_from_checkpoint
from lepton.serve.server import InferenceServer

__all__ = ["InferenceServer", "Servable", "MicroBatcher", "Metrics", "servable_from_checkpoint", "load_servable"]

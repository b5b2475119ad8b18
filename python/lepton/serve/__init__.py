"""lepton.serve: an HTTP/1.1 inference server with micro-batching and Prometheus metrics.

    lepton serve CHECKPOINT [--host 127.0.0.1] [--port 8000]    (SIGTERM or Ctrl-C: drain, exit 0)

or in Python: InferenceServer(Servable(model, input_shape)).start(), then .close().
"""

from lepton.serve.batcher import MicroBatcher
from lepton.serve.metrics import Metrics
from lepton.serve.servable import Servable, load_servable, servable_from_checkpoint
from lepton.serve.server import InferenceServer

__all__ = ["InferenceServer", "Servable", "MicroBatcher", "Metrics", "servable_from_checkpoint", "load_servable"]

"""A small builder over onnx.helper: named values, initializers from NumPy, nodes with fresh names."""

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["Graph"]


class Graph:
    def __init__(self):
        self.nodes, self.initializers, self._count = [], [], 0
        self.ranks = {}  # value name -> rank, where known (the graph input), for converters to check

    def name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value, hint="const", dtype=None):
        """An initializer holding value (a NumPy array, a lepton tensor or a Python number/list)."""
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type, inputs, outputs=1, **attrs):
        """Adds a node; returns its output name (or a list of them when outputs > 1)."""
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def model(self, inputs, outputs, opset, graph_name):
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lepton")
        # the oldest IR version that carries this opset, so that older runtimes load the file too
        model.ir_version = {17: 8, 18: 8, 19: 9, 20: 9, 21: 10}.get(opset, onnx.IR_VERSION)
        return model

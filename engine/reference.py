"""The reference path: a graph of Values per sample, exactly as micrograd's demo builds it.

One MLP of Values is built once. Each step copies the parameter vector into it, builds
model(x) and the loss per sample, averages (sum * 1/n, micrograd's way), backpropagates
and reads the gradients back. The graph has no reference cycles, so it is built with the
cyclic collector paused (micrograd spends 93% of its demo step in that collector) and is
freed by reference counting before the collector resumes.
"""

import numpy as np

from .losses import SAMPLE_LOSSES, accuracy
from .nn import MLP
from .value import Value, paused_gc


class ReferenceBackend:
    def __init__(self, model_cfg, loss_name, X, Y):
        self.model = MLP(model_cfg["inputs"], model_cfg["layers"], model_cfg["activation"], rng=0)
        self.params = self.model.parameters()
        self.loss_name = loss_name
        self.sample_loss = SAMPLE_LOSSES[loss_name]
        self.rows = X.tolist()
        self.Y = Y
        # per-sample targets as the Value losses take them: mse a list, the others a number
        self.targets = Y.reshape(len(Y), -1).tolist() if loss_name == "mse" else Y.tolist()

    def loss_and_grads(self, params, batch):
        """(mean data loss over the batch, its accuracy, d(loss)/d(params) as a vector)."""
        for p, value in zip(self.params, params.tolist(), strict=True):
            p.data = value
            p.grad = 0.0
        samples = range(len(self.rows)) if batch is None else batch.tolist()
        with paused_gc():
            outputs = []
            losses = []
            for i in samples:
                z = self.model(list(map(Value, self.rows[i])))  # as micrograd's demo
                z = z if isinstance(z, list) else [z]
                outputs.append(z)
                losses.append(self.sample_loss(z, self.targets[i]))
            data_loss = sum(losses) * (1.0 / len(losses))
            data_loss.backward()
            Z = np.array([[v.data for v in z] for z in outputs])
            loss = data_loss.data
            # Free the graph while the collector is still paused: re-enabled, it would
            # otherwise first sweep every node of it.
            del outputs, losses, z, data_loss
        Y = self.Y if batch is None else self.Y[batch]
        grads = np.array([p.grad for p in self.params])
        return loss, accuracy(self.loss_name, Z, Y), grads

"""The training backend of engine "compiled": the model's scalar graph for one sample,
built once (or found in this process's cache of programs) and run for a whole batch at a
time."""

import numpy as np

from ..losses import accuracy, batch_loss
from .cache import PROGRAMS
from .program import Program
from .structured import mlp_tape

CHUNK_BYTES = 32 * 2**20  # per array of values or gradients: a larger batch runs in chunks


def model_program(model_cfg, cache=PROGRAMS):
    """The compiled Program of a spec's model (its "model" section) on one sample: the MLP's
    tape, laid out a layer at a time, compiled or taken from `cache` (None: no cache)."""
    tape = mlp_tape(model_cfg["inputs"], model_cfg["layers"], model_cfg["activation"])
    if cache is None:
        return Program(tape, fused=True)
    return cache.program(tape, fused=True)


class CompiledBackend:
    """loss_and_grads(params, batch) as engine.reference's, from one compiled program.

    A batch whose values would take more than CHUNK_BYTES (100,000 samples through a wide
    model) runs in chunks of `chunk_rows` samples: a forward pass per chunk for the
    outputs, the loss over all of them, then per chunk the forward pass again and the
    backward pass. Memory stays bounded for one more forward pass."""

    def __init__(self, model_cfg, loss_name, X, Y, chunk_rows=None, cache=PROGRAMS):
        self.program = model_program(model_cfg, cache)
        self.chunk_rows = chunk_rows or max(1, CHUNK_BYTES // (8 * self.program.nv))
        self.loss_name = loss_name
        self.X = np.asarray(X, dtype=float)
        self.Y = np.asarray(Y)

    def loss_and_grads(self, params, batch):
        """(mean data loss over the batch, its accuracy, d(loss)/d(params) as a vector)."""
        X, Y = (self.X, self.Y) if batch is None else (self.X[batch], self.Y[batch])
        program = self.program
        if len(X) <= self.chunk_rows:
            Z = program.forward(params, X)
            loss, dZ = batch_loss(self.loss_name, Z, Y)
            grads = program.backward(dZ)
        else:
            chunks = [slice(s, s + self.chunk_rows) for s in range(0, len(X), self.chunk_rows)]
            Z = np.concatenate([program.forward(params, X[c]) for c in chunks])
            loss, dZ = batch_loss(self.loss_name, Z, Y)
            grads = np.zeros(len(params))
            for c in chunks:
                program.forward(params, X[c])
                grads += program.backward(dZ[c])
        return loss, accuracy(self.loss_name, Z, Y), grads

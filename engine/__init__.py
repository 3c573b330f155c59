"""gradserve's engine: a scalar autograd engine (micrograd-compatible), its MLPs, the
graph/1 format, and training. Pure Python and numpy: no HTTP, no Redis."""

from .draw import draw_dot, to_dot
from .errors import GraphError, InvalidInput, NumericError, SpecError
from .evaluate import evaluate
from .graph import to_graph
from .nn import MLP, Layer, Module, Neuron
from .spec import normalize_spec
from .train import train
from .value import Value

__all__ = [
    "MLP",
    "GraphError",
    "InvalidInput",
    "Layer",
    "Module",
    "Neuron",
    "NumericError",
    "SpecError",
    "Value",
    "draw_dot",
    "evaluate",
    "normalize_spec",
    "to_dot",
    "to_graph",
    "train",
]

"""A scalar that remembers how it was made, and backpropagates (after micrograd's engine.py).

Each node's `_backward_fn(grad)` closure holds its operands but never its own output, so a
graph has no reference cycles: it is freed by reference counting alone, and the cyclic
garbage collector (93% of micrograd's training time) has nothing to chase. `_backward()`,
the lectures' manual step, is a method that hands the closure `self.grad`.
"""

import contextlib
import gc
import math

from .errors import NumericError
from .ops import sigmoid as stable_sigmoid


@contextlib.contextmanager
def paused_gc():
    """Pause the cyclic collector: Value graphs have no cycles, yet every allocation of a
    large one would otherwise trigger full passes over all the nodes alive."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _finite(x, op):
    # x - x is 0.0 for every finite float and nan for inf and nan: cheaper than isfinite.
    if x - x:
        raise NumericError(f"{op} gave a non-finite result ({x})", op=op)
    return x


def topological_order(root):
    """Every Value that `root` depends on, each after all of its operands.

    Depth-first with an explicit stack, so any depth works: a node is expanded once, and
    its `(node,)` marker, pushed beneath its operands, pops only after they are placed."""
    order, expanded = [], set()
    stack = [root]
    while stack:
        v = stack.pop()
        if v.__class__ is tuple:
            order.append(v[0])
        elif id(v) not in expanded:
            expanded.add(id(v))
            stack.append((v,))
            for child in v._prev:
                if id(child) not in expanded:
                    stack.append(child)
    return order


class Value:
    __slots__ = ("data", "grad", "_backward_fn", "_prev", "_op", "label")

    def __init__(self, data, _children=(), _op="", label=""):
        self.data = float(data)
        self.grad = 0.0
        self._backward_fn = None  # fn(grad): adds this node's share of grad to its operands
        self._prev = _children  # a tuple, in operand order: a*a keeps both operands
        self._op = _op
        self.label = label  # a name for pictures (engine.draw), as the lectures give one

    def _backward(self):
        """Propagate self.grad to the operands, once: the lectures' manual backprop step
        (`o.grad = 1.0; o._backward()`). A leaf has nothing to do."""
        if self._backward_fn is not None:
            self._backward_fn(self.grad)

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(_finite(self.data + other.data, "add"), (self, other), "+")

        def _backward(grad):
            self.grad += grad
            other.grad += grad

        out._backward_fn = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(_finite(self.data * other.data, "mul"), (self, other), "*")

        def _backward(grad):
            self.grad += other.data * grad
            other.grad += self.data * grad

        out._backward_fn = _backward
        return out

    def __pow__(self, other):
        if isinstance(other, bool) or not isinstance(other, (int, float)):
            raise TypeError("only int or float exponents are supported")
        x, k = self.data, other
        if not math.isfinite(k):
            raise ValueError(f"the exponent must be finite, not {k}")
        if x == 0.0 and k < 0:
            raise NumericError(f"0 to the negative power {k} is not finite", op="pow")
        if x < 0.0 and k != int(k):
            raise NumericError(f"a negative base ({x}) to a fractional power ({k})", op="pow")
        try:
            y = x**k
        except OverflowError:
            raise NumericError(f"{x} ** {k} overflows", op="pow") from None
        out = Value(_finite(y, "pow"), (self,), f"**{k}")

        def _backward(grad):
            # k * x**(k-1): 0 ** (k-1) with 0 < k < 1 has no finite answer; finiteness of
            # gradients is checked once per node in backward().
            try:
                self.grad += k * x ** (k - 1) * grad if k != 0 else 0.0
            except (OverflowError, ZeroDivisionError):
                self.grad += math.inf

        out._backward_fn = _backward
        return out

    def relu(self):
        positive = self.data > 0
        out = Value(self.data if positive else 0.0, (self,), "ReLU")

        def _backward(grad):
            if positive:
                self.grad += grad

        out._backward_fn = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward(grad):
            self.grad += (1.0 - t * t) * grad

        out._backward_fn = _backward
        return out

    def exp(self):
        try:
            e = math.exp(self.data)
        except OverflowError:
            raise NumericError(f"exp({self.data}) overflows", op="exp") from None
        out = Value(e, (self,), "exp")

        def _backward(grad):
            self.grad += e * grad

        out._backward_fn = _backward
        return out

    def log(self):
        x = self.data
        if x <= 0.0:
            raise NumericError(f"log of {x} is not finite", op="log")
        out = Value(math.log(x), (self,), "log")

        def _backward(grad):
            self.grad += grad / x

        out._backward_fn = _backward
        return out

    def sigmoid(self):
        s = stable_sigmoid(self.data)  # exp never overflows
        out = Value(s, (self,), "sigmoid")

        def _backward(grad):
            self.grad += s * (1.0 - s) * grad

        out._backward_fn = _backward
        return out

    def backward(self):
        with paused_gc():  # walking a big graph allocates; it makes no cycles
            topo = topological_order(self)
            self.grad = 1.0
            for v in reversed(topo):  # the chain rule, from the output back to the leaves
                g = v.grad
                if g - g:
                    raise NumericError(
                        f"the gradient at a {v._op or 'leaf'} node is not finite",
                        op=v._op or "input",
                        value=v,
                    )
                if v._backward_fn is not None:
                    v._backward_fn(g)

    def __neg__(self):  # -self
        return self * -1

    def __radd__(self, other):  # other + self
        return self + other

    def __sub__(self, other):  # self - other
        return self + (-other)

    def __rsub__(self, other):  # other - self
        return other + (-self)

    def __rmul__(self, other):  # other * self
        return self * other

    def __truediv__(self, other):  # self / other
        return self * other**-1

    def __rtruediv__(self, other):  # other / self
        return other * self**-1

    def __repr__(self):
        return f"Value(data={self.data}, grad={self.grad})"

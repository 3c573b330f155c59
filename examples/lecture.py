"""Karpathy's "building micrograd" lecture, run on gradserve's engine as the lecture writes it.

A neuron with labelled values, its picture, backprop by hand node by node with `_backward()`,
then with `backward()`, and the lecture's 4-sample training loop.

python examples/lecture.py [picture.dot]   # writes the DOT text there instead of printing it
"""

import random
import sys

from engine import MLP, Value, to_dot

# The lecture's neuron: inputs x1, x2, weights w1, w2, bias b, and o = tanh(x1*w1 + x2*w2 + b).
x1 = Value(2.0, label="x1")
x2 = Value(0.0, label="x2")
w1 = Value(-3.0, label="w1")
w2 = Value(1.0, label="w2")
b = Value(6.8813735870195432, label="b")
x1w1 = x1 * w1
x1w1.label = "x1*w1"
x2w2 = x2 * w2
x2w2.label = "x2*w2"
x1w1x2w2 = x1w1 + x2w2
x1w1x2w2.label = "x1*w1 + x2*w2"
n = x1w1x2w2 + b
n.label = "n"
o = n.tanh()
o.label = "o"

# Backprop by hand: each node hands its gradient to its operands, from the output back.
o.grad = 1.0
o._backward()
n._backward()
b._backward()  # a leaf: nothing to do
x1w1x2w2._backward()
x2w2._backward()
x1w1._backward()
by_hand = {v.label: v.grad for v in (x1, x2, w1, w2, b, n)}
print("by hand:   ", "  ".join(f"{k}.grad={g:.4f}" for k, g in by_hand.items()))

if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as picture:
        picture.write(to_dot(o))
    print(f"picture written to {sys.argv[1]} (dot -Tpng {sys.argv[1]} -o neuron.png)")
else:
    print(to_dot(o))

# The same with backward(): zero the gradients first, or they add up.
for v in (x1, x2, w1, w2, b, x1w1, x2w2, x1w1x2w2, n, o):
    v.grad = 0.0
o.backward()
automatic = {v.label: v.grad for v in (x1, x2, w1, w2, b, n)}
print("backward():", "  ".join(f"{k}.grad={g:.4f}" for k, g in automatic.items()))
print("same gradients:", all(abs(by_hand[k] - automatic[k]) < 1e-12 for k in by_hand))

# The lecture's training loop: 4 samples, squared error, plain gradient descent. Its own MLP
# uses tanh everywhere; gradserve's (like micrograd's nn.py) keeps the last layer linear.
random.seed(1337)
model = MLP(3, [4, 4, 1], activation="tanh")
xs = [
    [2.0, 3.0, -1.0],
    [3.0, -1.0, 0.5],
    [0.5, 1.0, 1.0],
    [1.0, 1.0, -1.0],
]
ys = [1.0, -1.0, -1.0, 1.0]  # desired targets

for k in range(20):
    # forward pass
    ypred = [model(x) for x in xs]
    loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred, strict=True))

    # backward pass
    for p in model.parameters():
        p.grad = 0.0
    loss.backward()

    # update
    for p in model.parameters():
        p.data += -0.05 * p.grad

    print(f"step {k} loss {loss.data:.6f}")

print("predictions:", [round(y.data, 4) for y in ypred], "targets:", ys)

import random

import pytest

from engine import MLP, Layer, Neuron, Value
from tests.gradcheck import close, numeric_grad


def test_mlp_shape_and_parameter_count():
    model = MLP(2, [16, 16, 1], rng=0)
    assert len(model.parameters()) == (2 + 1) * 16 + (16 + 1) * 16 + (16 + 1) * 1 == 337
    out = model([Value(1.0), Value(-1.0)])
    assert isinstance(out, Value)
    assert len(MLP(3, [4, 2], rng=0)([1.0, 2.0, 3.0])) == 2


def test_init_matches_micrograd_given_the_same_seed():
    # micrograd's demo seeds the global random module and draws uniform(-1, 1) per weight,
    # biases 0, in parameters() order: the same explicit Random gives the same numbers.
    rng = random.Random(1337)
    expected = []
    for nin, nout in [(2, 16), (16, 16), (16, 1)]:
        for _ in range(nout):
            expected += [rng.uniform(-1, 1) for _ in range(nin)] + [0.0]
    assert [p.data for p in MLP(2, [16, 16, 1], rng=random.Random(1337)).parameters()] == expected


def test_same_seed_same_model_different_seed_different_model():
    first = [p.data for p in MLP(2, [4, 1], rng=7).parameters()]
    assert first == [p.data for p in MLP(2, [4, 1], rng=7).parameters()]
    assert first != [p.data for p in MLP(2, [4, 1], rng=8).parameters()]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear"])
def test_hidden_activation_and_linear_last_layer(activation):
    model = MLP(2, [3, 1], activation=activation, rng=1)
    assert all(n.activation == activation for n in model.layers[0].neurons)
    assert model.layers[-1].neurons[0].activation == "linear"


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid", "linear"])
def test_mlp_parameter_grads_match_finite_differences(activation):
    model = MLP(2, [3, 2], activation=activation, rng=3)
    params = model.parameters()
    x = [0.4, -1.1]

    def loss(values):
        for p, v in zip(params, values, strict=True):
            p.data = v
        a, b = model(x)
        return a * a + b

    start = [p.data for p in params]
    model.zero_grad()
    loss(start).backward()
    analytic = [p.grad for p in params]
    for i in range(len(params)):
        assert close(analytic[i], numeric_grad(lambda v: loss(v).data, start, i)), i


def test_hidden_layer_of_one_unit_feeds_the_next_layer():
    model = MLP(2, [1, 3, 1], activation="tanh", rng=0)
    hidden = model.layers[0].neurons[0]([0.5, -0.2])
    second = [n([hidden]) for n in model.layers[1].neurons]
    assert model([0.5, -0.2]).data == model.layers[2].neurons[0](second).data


def test_zero_grad_clears_every_parameter():
    model = MLP(2, [2, 1], rng=0)
    model([1.0, 1.0]).backward()
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        Neuron(2, activation="gelu")
    with pytest.raises(ValueError, match="positive"):
        MLP(2, [])
    with pytest.raises(ValueError, match="positive"):
        MLP(2, [0, 1])
    with pytest.raises(ValueError):
        Neuron(2, rng=0)([1.0, 2.0, 3.0])  # wrong input width


def test_reprs_read_like_micrograd():
    assert repr(Neuron(2, rng=0)) == "ReluNeuron(2)"
    assert repr(Layer(2, 1, activation="linear", rng=0)) == "Layer of [LinearNeuron(2)]"
    assert repr(MLP(1, [1], rng=0)).startswith("MLP of [Layer of")

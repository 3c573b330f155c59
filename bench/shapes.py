"""The graph shapes the benches time and the tests check, built as plain graph/1 documents
(no engine import: tests read them too)."""

import random

BIG_LEAVES = 1000  # 1,000 leaves, 499,500 products, a sum tree: 999,999 nodes


def products_and_sum_tree(leaves, seed=0):
    """graph/1: leaves, the product of every pair of them, and a balanced tree of adds over
    the products (the issue's 1,000,000-node graph with BIG_LEAVES leaves)."""
    rng = random.Random(seed)
    nodes = [{"id": f"x{i}", "op": "input", "value": rng.uniform(-1, 1)} for i in range(leaves)]
    level = []
    for i in range(leaves):
        for j in range(i + 1, leaves):
            level.append(f"p{i}.{j}")
            nodes.append({"id": level[-1], "op": "mul", "inputs": [f"x{i}", f"x{j}"]})
    while len(level) > 1:
        paired = []
        for k in range(0, len(level) - 1, 2):
            paired.append(f"s{len(nodes)}")
            nodes.append({"id": paired[-1], "op": "add", "inputs": level[k : k + 2]})
        level = paired + level[len(paired) * 2 :]
    return {"nodes": nodes}


def micrograd_products_and_sum_tree(Value, doc):
    """micrograd's build + backward of the same graph (the leaves' values from doc), with
    its `Value` class."""
    values = {}
    for node in doc["nodes"]:
        if node["op"] == "input":
            values[node["id"]] = Value(node["value"])
        else:
            a, b = (values[i] for i in node["inputs"])
            values[node["id"]] = a * b if node["op"] == "mul" else a + b
    values[doc["nodes"][-1]["id"]].backward()
    return values

"""gradserve from Python with its client (pip install ./client; `make install` has it): a
graph's gradients, then micrograd's demo as a job and its model.

GRADSERVE_API_KEY=$(cat var/api-key) python examples/client.py [http://127.0.0.1:8000]
"""

import json
import os
import sys
from pathlib import Path

from gradserve_client import Client

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
GRAPH = json.loads((Path(__file__).parent / "micrograd_graph.json").read_text())


def main() -> None:
    key = os.environ.get("GRADSERVE_API_KEY")
    if not key:
        raise SystemExit("set GRADSERVE_API_KEY (make run writes one to var/api-key)")
    with Client(BASE, key) as gs:  # errors raise, keeping the server's problem document
        # 1. Forward values and gradients of micrograd's README expression.
        result = gs.graphs.evaluate(GRAPH)["result"]
        grads = result["grads"]
        print(json.dumps({"g": result["value"], "dg/da": grads["a"], "dg/db": grads["b"]}))

        # 2. micrograd's demo as a job (an empty spec takes every default). `wait` returns
        # it once it has ended; `gs.jobs.stream(id)` would follow it step by step.
        job = gs.jobs.wait(gs.jobs.create({})["id"], timeout=120)
        if job["status"] != "succeeded":
            raise SystemExit(f"the job {job['status']}: {job['error']}")
        history = gs.jobs.history(job["id"])

        # 3. The trained model's outputs for two points.
        predicted = gs.models.predict(job["model_id"], [[1.0, -0.5], [-1.0, 1.0]])
        print(
            json.dumps(
                {
                    "status": job["status"],
                    "steps": len(history["loss"]),
                    "final_loss": history["loss"][-1],
                    "accuracy": job["metrics"]["accuracy"],
                    "y": predicted["y"],
                }
            )
        )


if __name__ == "__main__":
    main()

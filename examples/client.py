"""gradserve from Python with requests: a graph's gradients, then micrograd's demo as a job.

GRADSERVE_API_KEY=$(cat var/api-key) python examples/client.py [http://127.0.0.1:8000]
"""

import json
import os
import sys
import time
from pathlib import Path

import requests

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
GRAPH = json.loads((Path(__file__).parent / "micrograd_graph.json").read_text())


def main() -> None:
    key = os.environ.get("GRADSERVE_API_KEY")
    if not key:
        raise SystemExit("set GRADSERVE_API_KEY (make run writes one to var/api-key)")
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {key}"  # every /v1 request needs it
        # 1. Forward values and gradients of micrograd's README expression.
        response = http.post(f"{BASE}/v1/graphs", json=GRAPH, timeout=30)
        response.raise_for_status()
        result = response.json()["result"]
        print(
            json.dumps(
                {"g": result["value"], "dg/da": result["grads"]["a"], "dg/db": result["grads"]["b"]}
            )
        )

        # 2. micrograd's demo as a job: an empty spec takes every default.
        response = http.post(
            f"{BASE}/v1/jobs",
            json={},
            timeout=30,
            headers={"Idempotency-Key": f"demo-{time.time_ns()}"},
        )
        response.raise_for_status()
        job_url = f"{BASE}{response.headers['Location']}"
        while (job := http.get(job_url, timeout=30).json())["status"] in ("queued", "running"):
            time.sleep(0.05)
        if job["status"] != "succeeded":
            raise SystemExit(f"the job {job['status']}: {job['error']}")
        history = http.get(f"{job_url}/history", timeout=30).json()

        # 3. The trained model's outputs for two points.
        response = http.post(
            f"{BASE}/v1/models/{job['model_id']}/predict",
            json={"x": [[1.0, -0.5], [-1.0, 1.0]]},
            timeout=30,
        )
        response.raise_for_status()
        print(
            json.dumps(
                {
                    "status": job["status"],
                    "steps": len(history["loss"]),
                    "final_loss": history["loss"][-1],
                    "accuracy": job["metrics"]["accuracy"],
                    "y": response.json()["y"],
                }
            )
        )


if __name__ == "__main__":
    main()

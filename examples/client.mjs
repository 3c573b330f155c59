// gradserve from Node.js (18+) with its built-in fetch: a graph's gradients, then
// micrograd's demo as a job. No dependencies.
//
//     GRADSERVE_API_KEY=$(cat var/api-key) node examples/client.mjs [http://127.0.0.1:8000]
import { readFile } from "node:fs/promises";

const BASE = process.argv[2] ?? "http://127.0.0.1:8000";
const KEY = process.env.GRADSERVE_API_KEY;
if (!KEY) {
  console.error("set GRADSERVE_API_KEY (make run writes one to var/api-key)");
  process.exit(1);
}
const graph = JSON.parse(
  await readFile(new URL("./micrograd_graph.json", import.meta.url), "utf8"),
);

// Errors come as RFC 9457 problem details: say what the server said.
async function call(method, path, body, headers = {}) {
  const response = await fetch(BASE + path, {
    method,
    headers: {
      Authorization: `Bearer ${KEY}`, // every /v1 request needs it
      ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await response.json();
  if (!response.ok) {
    throw new Error(`${method} ${path}: ${response.status} ${payload.title}: ${payload.detail}`);
  }
  return { payload, location: response.headers.get("Location") };
}

// 1. Forward values and gradients of micrograd's README expression.
const { payload: evaluated } = await call("POST", "/v1/graphs", graph);
const { result } = evaluated;
console.log(JSON.stringify({ g: result.value, "dg/da": result.grads.a, "dg/db": result.grads.b }));

// 2. micrograd's demo as a job: an empty spec takes every default.
const { location } = await call("POST", "/v1/jobs", {}, { "Idempotency-Key": `demo-${Date.now()}` });
let job;
do {
  await new Promise((resolve) => setTimeout(resolve, 50));
  ({ payload: job } = await call("GET", location));
} while (job.status === "queued" || job.status === "running");
if (job.status !== "succeeded") {
  throw new Error(`the job ${job.status}: ${JSON.stringify(job.error)}`);
}
const { payload: history } = await call("GET", `${location}/history`);

// 3. The trained model's outputs for two points.
const { payload: predicted } = await call("POST", `/v1/models/${job.model_id}/predict`, {
  x: [[1.0, -0.5], [-1.0, 1.0]],
});
console.log(JSON.stringify({
  status: job.status,
  steps: history.loss.length,
  final_loss: history.loss.at(-1),
  accuracy: job.metrics.accuracy,
  y: predicted.y,
}));

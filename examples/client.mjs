// gradserve from Node.js (20+) with its built-in fetch: a graph's gradients, then
// micrograd's demo as a job, followed live on its events stream. No dependencies.
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

// The job's Server-Sent Events, as they come: `status` events (data: the job) and
// `progress` events (data: the steps since the last one; id: the last step). The stream
// ends after the terminal status; a dropped connection resumes with Last-Event-ID.
async function* events(path) {
  let lastStep = null;
  for (let attempt = 0; attempt < 5; attempt++) {
    const response = await fetch(BASE + path, {
      headers: {
        Authorization: `Bearer ${KEY}`,
        Accept: "text/event-stream",
        ...(lastStep === null ? {} : { "Last-Event-ID": String(lastStep) }),
      },
    });
    if (!response.ok) {
      const problem = await response.json();
      throw new Error(`GET ${path}: ${response.status} ${problem.title}: ${problem.detail}`);
    }
    const decoder = new TextDecoder();
    let buffer = "";
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        let end;
        while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
          const event = { event: "message", data: [] };
          for (const line of block.split(/\r?\n/)) {
            if (line.startsWith(":")) continue; // a keep-alive comment
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "data") event.data.push(value);
            else if (field === "event" || field === "id") event[field] = value;
          }
          if (event.data.length === 0) continue;
          const data = JSON.parse(event.data.join("\n"));
          if (event.event === "progress") lastStep = data.step.at(-1);
          attempt = 0;
          yield { event: event.event, data };
          if (event.event === "status" && ["succeeded", "failed", "cancelled"].includes(data.status)) {
            return;
          }
        }
      }
    } catch (error) {
      console.error(`the events stream dropped (${error.message}); resuming`);
    }
  }
  throw new Error(`the events stream of ${path} kept dropping`);
}

// 2. micrograd's demo as a job: an empty spec takes every default.
const { payload: submitted, location } = await call("POST", "/v1/jobs", {}, {
  "Idempotency-Key": `demo-${Date.now()}`,
});
let job = submitted;
for await (const { event, data } of events(`${location}/events`)) {
  if (event === "status") {
    job = data;
  } else if (event === "progress") { // progress on stderr; stdout keeps the JSON
    const step = data.step.at(-1) + 1;
    process.stderr.write(`\rstep ${step}/${job.progress.steps} loss ${data.loss.at(-1).toFixed(4)}`);
  }
}
process.stderr.write("\n");
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

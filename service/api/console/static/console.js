// The console's shared part: the API key (this tab's sessionStorage, never a URL or
// localStorage), calls to /v1 with it, problems shown as the API words them, and a job
// followed live. Each page's script calls gradserve.start(run).
"use strict";

const gradserve = (() => {
  const KEY = "gradserve.apiKey";
  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
  const RECONNECT_MS = [250, 500, 1000, 2000, 5000];

  /** An API answer that is not 2xx: the problem (RFC 9457) it carried. */
  class ApiError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.problem = problem;
    }
  }

  const key = () => sessionStorage.getItem(KEY);

  async function problemOf(response) {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body === "object") return body;
    } catch (_) { /* not JSON: said below */ }
    return { title: `HTTP ${response.status} ${response.statusText}`, detail: text.slice(0, 300) };
  }

  /** A /v1 call with the key: the parsed JSON (or text), the Response itself with
   * `raw`, or an ApiError. A 401 forgets the key and asks for it again. */
  async function api(path, { method = "GET", body, headers = {}, raw = false, signal } = {}) {
    const sent = { Authorization: `Bearer ${key()}`, ...headers };
    if (body !== undefined && !("Content-Type" in sent)) sent["Content-Type"] = "application/json";
    if (body !== undefined && typeof body !== "string") body = JSON.stringify(body);
    const response = await fetch(path, { method, headers: sent, body, signal, cache: "no-store" });
    if (!response.ok) {
      const error = new ApiError(response.status, await problemOf(response));
      if (response.status === 401) signedOut(error);
      throw error;
    }
    if (raw) return response;
    if (response.status === 204) return null;
    const type = response.headers.get("Content-Type") || "";
    return type.includes("json") ? response.json() : response.text();
  }

  /** An element: el("a", {href: "/x", class: "y"}, "text", child, ...). */
  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  /** The problem in `box`: its title, detail and each error's path: message. */
  function showProblem(box, error) {
    const problem = error.problem
      || (error.title ? error : { title: "Error", detail: String(error.message || error) });
    box.replaceChildren(
      el("p", { class: "problem-title" }, problem.title || "Error",
        error.status ? ` (${error.status})` : ""),
    );
    if (problem.detail) box.append(el("p", { class: "problem-detail" }, problem.detail));
    if (Array.isArray(problem.errors) && problem.errors.length) {
      box.append(el("ul", { class: "problem-errors" }, ...problem.errors.map((entry) =>
        el("li", {}, el("code", {}, entry.path || "(body)"), `: ${entry.message}`))));
    }
    box.hidden = false;
  }

  function clearProblem(box) {
    box.hidden = true;
    box.replaceChildren();
  }

  const number = (v, digits = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  const when = (stamp) => (stamp ? new Date(stamp).toLocaleString() : "–");
  const sleep = (ms, signal) => new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); });
  });

  // -- the events stream --------------------------------------------------------------

  /** Server-Sent Events read from a fetch Response (EventSource cannot send a key). */
  async function* sse(response) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { type: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const raw of lines) {
        const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
        if (line === "") {
          if (event.data.length) yield { type: event.type, data: event.data.join("\n"), id: event.id };
          event = { type: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event.type = text;
        else if (field === "data") event.data.push(text);
        else if (field === "id") event.id = text;
      }
    }
  }

  /** Follow a job until it is terminal: onStatus(job) on each status, onProgress({step,
   * loss, accuracy}) for steps after `since - 1`, each step once and in order. Reads the
   * events stream (reconnecting with Last-Event-ID); where it cannot, polls. */
  async function followJob(jobId, { onStatus, onProgress, since = 0, signal }) {
    let next = since; // the first step not yet handed on
    const progress = async (page) => {
      let { step, loss, accuracy } = page;
      if (step.length && step[0] > next) { // a gap (a stream that starts later): fill it
        await fillHistory(jobId, next, step[0], progress, signal);
      }
      const from = step.findIndex((s) => s >= next);
      if (from < 0) return;
      step = step.slice(from); loss = loss.slice(from); accuracy = accuracy.slice(from);
      next = step[step.length - 1] + 1;
      onProgress({ step, loss, accuracy });
    };
    for (let attempt = 0; ; attempt++) {
      const headers = { Accept: "text/event-stream" };
      if (next > 0) headers["Last-Event-ID"] = String(next - 1);
      let response;
      try {
        response = await api(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { headers, raw: true, signal });
      } catch (error) {
        // No stream here (404, 405: an API without one; 503: this process has all the
        // streams it allows): poll instead.
        if (error instanceof ApiError && [404, 405, 503].includes(error.status)) {
          return pollJob(jobId, { onStatus, progress, from: () => next, signal });
        }
        if (signal?.aborted || error instanceof ApiError) throw error;
        await sleep(RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)], signal);
        continue;
      }
      if (!(response.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        return pollJob(jobId, { onStatus, progress, from: () => next, signal });
      }
      let terminal = false;
      try {
        for await (const event of sse(response)) {
          if (event.type === "status") {
            const job = JSON.parse(event.data);
            onStatus(job);
            terminal = TERMINAL.has(job.status);
          } else if (event.type === "progress") {
            await progress(JSON.parse(event.data));
            attempt = 0;
          }
        }
      } catch (error) {
        if (signal?.aborted) throw error; // else the connection dropped: resume below
      }
      if (terminal) return;
      await sleep(RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)], signal);
    }
  }

  /** Steps [since, until) of a job's history (until = Infinity: all), page by page. */
  async function fillHistory(jobId, since, until, handle, signal) {
    let start = since;
    while (start !== null && start < until) {
      const page = await api(`/v1/jobs/${encodeURIComponent(jobId)}/history?since=${start}`, { signal });
      const keep = page.step.findIndex((s) => s >= until);
      const end = keep < 0 ? page.step.length : keep;
      if (end > 0) {
        await handle({ step: page.step.slice(0, end), loss: page.loss.slice(0, end),
          accuracy: page.accuracy.slice(0, end) });
      }
      if (keep >= 0) return;
      start = page.next_since ?? null;
    }
  }

  /** The stream's stand-in where the API has none: the job and its new steps every second. */
  async function pollJob(jobId, { onStatus, progress, from, signal }) {
    let status = null;
    for (;;) {
      const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal });
      if (job.status !== status || !TERMINAL.has(job.status)) onStatus(job);
      status = job.status;
      await fillHistory(jobId, from(), Infinity, progress, signal); // read after the status:
      if (TERMINAL.has(job.status)) return; // a terminal job's history is complete here
      await sleep(1000, signal);
    }
  }

  // -- signing in and out --------------------------------------------------------------

  let run = null;

  function signedOut(error) {
    sessionStorage.removeItem(KEY);
    document.getElementById("content").hidden = true;
    document.getElementById("sign-out").hidden = true;
    document.getElementById("sign-in").hidden = false;
    const box = document.getElementById("sign-in-problem");
    if (error) showProblem(box, error);
    else clearProblem(box);
    document.getElementById("api-key").focus();
  }

  function signedIn() {
    document.getElementById("sign-in").hidden = true;
    document.getElementById("sign-out").hidden = false;
    document.getElementById("content").hidden = false;
    run();
  }

  /** Run the page's `page()` once a key is known (asking for it first if needed). */
  function start(page) {
    run = page;
    document.getElementById("sign-in-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = document.getElementById("api-key");
      sessionStorage.setItem(KEY, input.value.trim());
      try {
        await api("/v1/jobs?limit=1"); // is the key good?
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 401)) signedOut(error);
        return;
      }
      input.value = "";
      signedIn();
    });
    document.getElementById("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      window.location.reload();
    });
    if (key()) signedIn();
    else signedOut(null);
  }

  return { ApiError, TERMINAL, api, el, showProblem, clearProblem, followJob, fillHistory,
    number, when, sleep, start, main: () => document.getElementById("content") };
})();

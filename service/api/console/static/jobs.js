// The jobs page: submit a spec, list the tenant's jobs page by page, follow the active ones.
"use strict";

(() => {
  const { api, el, showProblem, clearProblem, followJob, number, when, TERMINAL } = gradserve;
  const PAGE_SIZE = 20;
  const STREAMS = 3; // live streams at most: a browser opens 6 connections to one host
  const REFRESH_MS = 2000; // beyond them, the page is read again this often

  const cursors = [null]; // the cursor of each page seen: back to the newest, on to older
  let page = 0;
  let live = new AbortController();
  let refresh = null;
  let loads = 0; // the latest load() owns the table
  const demo = document.getElementById("spec").value;

  function statusFilter() {
    return document.getElementById("status-filter").value;
  }

  function row(job) {
    const bar = el("progress", { max: job.progress?.steps || 1, value: job.progress?.step || 0,
      "aria-label": `Progress of job ${job.id}` });
    return el("tr", { id: `job-${job.id}`, "data-status": job.status },
      el("td", {}, el("a", { href: `/jobs/${encodeURIComponent(job.id)}` }, el("code", {}, job.id))),
      el("td", {}, el("span", { class: `status ${job.status}` }, job.status)),
      el("td", {}, bar, el("span", { class: "steps" }, `${job.progress?.step ?? 0}/${job.progress?.steps ?? "?"}`)),
      el("td", { class: "loss" }, number(job.metrics?.loss)),
      el("td", { class: "accuracy" }, number(job.metrics?.accuracy, 3)),
      el("td", {}, el("time", { datetime: job.created_at }, when(job.created_at))));
  }

  function update(job) {
    const old = document.getElementById(`job-${job.id}`);
    if (old) old.replaceWith(row(job));
  }

  function stepped(jobId, progress) {
    const tr = document.getElementById(`job-${jobId}`);
    if (!tr || !progress.step.length) return;
    const last = progress.step.length - 1;
    const bar = tr.querySelector("progress");
    bar.value = progress.step[last] + 1;
    tr.querySelector(".steps").textContent = `${progress.step[last] + 1}/${bar.max}`;
    tr.querySelector(".loss").textContent = number(progress.loss[last]);
    tr.querySelector(".accuracy").textContent = number(progress.accuracy[last], 3);
  }

  async function load() {
    const box = document.getElementById("list-problem");
    live.abort();
    live = new AbortController();
    clearTimeout(refresh);
    const query = new URLSearchParams({ limit: PAGE_SIZE });
    if (statusFilter()) query.set("status", statusFilter());
    if (cursors[page]) query.set("cursor", cursors[page]);
    const mine = ++loads;
    let listing;
    try {
      listing = await api(`/v1/jobs?${query}`);
    } catch (error) {
      if (mine === loads) showProblem(box, error);
      return;
    }
    if (mine !== loads) return; // a later load (another filter or page) answers instead
    clearProblem(box);
    document.getElementById("jobs").replaceChildren(...listing.items.map(row));
    document.getElementById("jobs-empty").hidden = listing.items.length > 0;
    cursors[page + 1] = listing.next_cursor;
    document.getElementById("next-page").disabled = !listing.next_cursor;
    document.getElementById("first-page").disabled = page === 0;
    const active = listing.items.filter((job) => !TERMINAL.has(job.status));
    for (const job of active.slice(0, STREAMS)) follow(job, live.signal);
    if (active.length > STREAMS) refresh = setTimeout(load, REFRESH_MS);
  }

  function follow(job, signal) {
    const since = job.progress?.step ?? 0;
    followJob(job.id, { since, signal, onStatus: update, onProgress: (p) => stepped(job.id, p) })
      .catch((error) => { if (!signal.aborted) showProblem(document.getElementById("list-problem"), error); });
  }

  async function submit(event) {
    event.preventDefault();
    const box = document.getElementById("submit-problem");
    const text = document.getElementById("spec").value;
    try {
      JSON.parse(text);
    } catch (error) {
      showProblem(box, { title: "Not JSON", detail: `The spec is not valid JSON: ${error.message}` });
      return;
    }
    try {
      const job = await api("/v1/jobs", { method: "POST", body: text });
      clearProblem(box);
      window.location.assign(`/jobs/${encodeURIComponent(job.id)}`);
    } catch (error) {
      showProblem(box, error);
    }
  }

  gradserve.start(() => {
    document.getElementById("submit-form").addEventListener("submit", submit);
    document.getElementById("demo-spec").addEventListener("click", () => {
      document.getElementById("spec").value = demo;
    });
    document.getElementById("status-filter").addEventListener("change", () => {
      cursors.length = 1;
      page = 0;
      const url = new URL(window.location);
      if (statusFilter()) url.searchParams.set("status", statusFilter());
      else url.searchParams.delete("status");
      history.replaceState(null, "", url);
      load();
    });
    document.getElementById("filter-form").addEventListener("submit", (e) => e.preventDefault());
    document.getElementById("next-page").addEventListener("click", () => { page += 1; load(); });
    document.getElementById("first-page").addEventListener("click", () => { page = 0; load(); });
    load();
  });
})();

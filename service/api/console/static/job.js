// A job's page: its state, spec and curves, live while it trains; cancel, delete, CSV.
"use strict";

(() => {
  const { api, el, showProblem, clearProblem, followJob, fillHistory, number, when, TERMINAL } = gradserve;
  const jobId = gradserve.main().dataset.jobId;
  const path = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const steps = [], losses = [], accuracies = [];
  const chartBox = document.getElementById("curves");
  let plot = null;
  let drawPending = false;

  function problem(error) {
    showProblem(document.getElementById("job-problem"), error);
  }

  function chart() {
    const width = Math.max(280, chartBox.clientWidth);
    return new uPlot({
      width,
      height: Math.round(Math.min(320, width * 0.6)),
      scales: { x: { time: false }, accuracy: { range: [0, 1] } },
      axes: [
        { label: "step" },
        { label: "loss", scale: "y" },
        { label: "accuracy", scale: "accuracy", side: 1, grid: { show: false } },
      ],
      series: [
        { label: "step" },
        { label: "loss", stroke: "#c0392b", width: 2, scale: "y" },
        { label: "accuracy", stroke: "#2471a3", width: 2, scale: "accuracy" },
      ],
    }, [steps, losses, accuracies], chartBox);
  }

  /** Redraw once per frame however many progress events came in it. */
  function draw() {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      plot.setData([steps, losses, accuracies]);
      chartBox.dataset.points = String(steps.length);
      chartBox.dataset.drawnAt = String(Date.now()); // when the last step became visible
      document.getElementById("curves-summary").textContent = steps.length
        ? `${steps.length} steps drawn; last loss ${number(losses.at(-1))}, accuracy ${number(accuracies.at(-1), 3)}`
        : "No steps yet.";
    });
  }

  function added(page) {
    steps.push(...page.step);
    losses.push(...page.loss);
    accuracies.push(...page.accuracy);
    draw();
  }

  function show(job) {
    const status = document.getElementById("status");
    status.textContent = job.status;
    status.className = `status ${job.status}`;
    const bar = document.getElementById("progress");
    bar.max = job.progress?.steps || 1;
    bar.value = job.progress?.step || 0;
    document.getElementById("progress-text").textContent = `${bar.value}/${bar.max} steps`;
    document.getElementById("loss").textContent = number(job.metrics?.loss);
    document.getElementById("accuracy").textContent = number(job.metrics?.accuracy, 3);
    document.getElementById("created").textContent = when(job.created_at);
    document.getElementById("finished").textContent = when(job.finished_at);
    document.getElementById("finished").dataset.stamp = job.finished_at || "";
    const model = document.getElementById("model");
    model.replaceChildren(job.model_id
      ? el("a", { href: `/models/${encodeURIComponent(job.model_id)}`, id: "model-link" }, job.model_id)
      : "–");
    document.getElementById("cancel").disabled = TERMINAL.has(job.status);
    document.getElementById("spec").textContent = JSON.stringify(job.spec, null, 2);
    if (job.error) problem({ title: job.error.title || "Failed", detail: job.error.detail, problem: job.error });
  }

  function stepped(page) {
    added(page);
    const bar = document.getElementById("progress");
    bar.value = steps.length;
    document.getElementById("progress-text").textContent = `${bar.value}/${bar.max} steps`;
    document.getElementById("loss").textContent = number(losses.at(-1));
    document.getElementById("accuracy").textContent = number(accuracies.at(-1), 3);
  }

  async function csv() {
    const lines = ["step,loss,accuracy"];
    await fillHistory(jobId, 0, Infinity, (page) => {
      page.step.forEach((s, i) => lines.push(`${s},${page.loss[i]},${page.accuracy[i] ?? ""}`));
    });
    const url = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
    const link = el("a", { href: url, download: `job-${jobId}-history.csv`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  function act(button, action) {
    document.getElementById(button).addEventListener("click", async () => {
      try {
        clearProblem(document.getElementById("job-problem"));
        await action();
      } catch (error) {
        problem(error);
      }
    });
  }

  gradserve.start(async () => {
    plot = chart();
    window.addEventListener("resize", () => {
      const width = Math.max(280, chartBox.clientWidth);
      plot.setSize({ width, height: Math.round(Math.min(320, width * 0.6)) });
    });
    act("cancel", async () => show(await api(`${path}/cancel`, { method: "POST" })));
    act("delete", async () => {
      if (!window.confirm(`Delete job ${jobId} with its history?`)) return;
      await api(path, { method: "DELETE" });
      window.location.assign("/");
    });
    act("csv", csv);
    try {
      const job = await api(path);
      show(job);
      await fillHistory(jobId, 0, Infinity, stepped); // what is stored so far
      if (!TERMINAL.has(job.status) || steps.length < (job.progress?.step ?? 0)) {
        await followJob(jobId, { since: steps.length, onStatus: show, onProgress: stepped });
      }
      draw();
    } catch (error) {
      problem(error);
    }
  });
})();

// The graphs page: evaluate a graph/1 document and draw the DOT the API gives for it with
// Graphviz compiled to WebAssembly (viz.js, in a worker), with pan and zoom.
"use strict";

(() => {
  const { api, showProblem, clearProblem, number, sleep } = gradserve;
  const main = gradserve.main();
  const DOT = "text/vnd.graphviz";
  const POLL_MS = 500;
  const WAIT_SECONDS = 30; // within the API's MAX_WAIT (60 s unless configured)
  const SHOWN_MAX = 256 * 1024; // characters: a larger upload is sent without being shown
  const LAYOUT_SECONDS = 30; // Graphviz's time to lay a drawing out, then the page gives up
  let uploaded = null; // (a textarea of megabytes makes the page crawl)
  const box = document.getElementById("graph-problem");
  const drawing = document.getElementById("drawing");
  let view = null; // the SVG's viewBox now: {x, y, w, h}
  let whole = null; // and the whole drawing's

  function setView(next) {
    view = next;
    drawing.querySelector("svg")?.setAttribute("viewBox", `${view.x} ${view.y} ${view.w} ${view.h}`);
  }

  function zoom(factor, cx = view.x + view.w / 2, cy = view.y + view.h / 2) {
    const w = view.w / factor, h = view.h / factor;
    setView({ x: cx - ((cx - view.x) / view.w) * w, y: cy - ((cy - view.y) / view.h) * h, w, h });
  }

  function pan(dx, dy) {
    setView({ ...view, x: view.x + dx, y: view.y + dy });
  }

  function panAndZoom() {
    let dragging = null;
    drawing.addEventListener("pointerdown", (event) => {
      dragging = { x: event.clientX, y: event.clientY };
      drawing.setPointerCapture(event.pointerId);
    });
    drawing.addEventListener("pointermove", (event) => {
      if (!dragging || !view) return;
      const scale = view.w / drawing.clientWidth;
      pan((dragging.x - event.clientX) * scale, (dragging.y - event.clientY) * scale);
      dragging = { x: event.clientX, y: event.clientY };
    });
    drawing.addEventListener("pointerup", () => { dragging = null; });
    drawing.addEventListener("wheel", (event) => {
      if (!view) return;
      event.preventDefault();
      const rect = drawing.getBoundingClientRect();
      const cx = view.x + ((event.clientX - rect.left) / rect.width) * view.w;
      const cy = view.y + ((event.clientY - rect.top) / rect.height) * view.h;
      zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2, cx, cy);
    }, { passive: false });
    drawing.addEventListener("keydown", (event) => {
      if (!view) return;
      const step = view.w / 10;
      const keys = {
        ArrowLeft: () => pan(-step, 0), ArrowRight: () => pan(step, 0),
        ArrowUp: () => pan(0, -step), ArrowDown: () => pan(0, step),
        "+": () => zoom(1.25), "=": () => zoom(1.25), "-": () => zoom(0.8), "0": () => setView(whole),
      };
      if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
    });
    document.getElementById("zoom-in").addEventListener("click", () => view && zoom(1.25));
    document.getElementById("zoom-out").addEventListener("click", () => view && zoom(0.8));
    document.getElementById("zoom-fit").addEventListener("click", () => whole && setView(whole));
  }

  // The page draws the DOT the API gives: of the result it shows only the summary, so it
  // asks for that alone (not every node's value and gradient: 40 MB for a million nodes).
  // A queued graph's answer is held until it is evaluated (Prefer: wait), so it is drawn
  // as soon as it is, not at the next poll.
  const PREFER = { Prefer: `return=minimal, wait=${WAIT_SECONDS}` };

  async function evaluated(graph) {
    let asked = false;
    while (graph.status === "queued" || graph.status === "running") {
      if (asked) await sleep(POLL_MS); // not evaluated within the wait, or the wait not held
      graph = await api(`/v1/graphs/${encodeURIComponent(graph.id)}`, { headers: PREFER });
      asked = true;
    }
    if (graph.status === "failed") throw new gradserve.ApiError(422, graph.error || { title: "Failed" });
    return graph;
  }

  // Graphviz (viz.js) lays drawings out in a worker (layout-worker.js): the page stays
  // responsive whatever the graph. The worker is kept from one drawing to the next (starting
  // one loads and compiles viz.js, about 150 ms of a small graph's 350 ms) and is ended when
  // a layout takes over LAYOUT_SECONDS, failing what it still had to lay out.
  const TOO_SLOW = { title: "Too slow to draw", detail: `Graphviz did not lay this graph out `
    + `within ${LAYOUT_SECONDS} s in the browser. Its values and gradients are in the JSON `
    + "result (GET /v1/graphs/{id}); its DOT can be drawn with Graphviz's dot." };
  const layouts = new Map(); // id -> { resolve, reject } of a layout the worker has not answered
  let worker = null;
  let lastLayout = 0;

  function layoutWorker() {
    if (worker) return worker;
    worker = new Worker(main.dataset.layoutUrl);
    worker.onmessage = ({ data }) => {
      const asked = layouts.get(data.id);
      layouts.delete(data.id);
      if (data.error) asked?.reject({ title: "Could not draw", detail: data.error });
      else asked?.resolve(new DOMParser().parseFromString(data.svg, "image/svg+xml").documentElement);
    };
    worker.onerror = (event) => {
      endWorker({ title: "Could not draw", detail: event.message || "the layout worker failed" });
    };
    return worker;
  }

  function endWorker(problem) {
    worker?.terminate();
    worker = null;
    for (const asked of layouts.values()) asked.reject(problem);
    layouts.clear();
  }

  // The SVG of a DOT drawing.
  function layout(dot) {
    return new Promise((resolve, reject) => {
      const id = ++lastLayout;
      const timer = setTimeout(() => endWorker(TOO_SLOW), LAYOUT_SECONDS * 1000);
      const settled = (then) => (value) => { clearTimeout(timer); then(value); };
      layouts.set(id, { resolve: settled(resolve), reject: settled(reject) });
      layoutWorker().postMessage({ id, dot });
    });
  }

  async function draw(graph) {
    const dot = await api(`/v1/graphs/${encodeURIComponent(graph.id)}`, { headers: { Accept: DOT } });
    const svg = document.importNode(await layout(dot), true);
    const [x, y, w, h] = svg.getAttribute("viewBox").split(/\s+/).map(Number);
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `Graph ${graph.id}`);
    document.getElementById("drawing-card").hidden = false; // laid out, to be measured
    drawing.replaceChildren(svg);
    whole = { x, y, w, h };
    drawing.dataset.whole = `${x} ${y} ${w} ${h}`;
    // As tall as the drawing at its own size (within bounds), shown at that size from its
    // left end, or whole if it fits: a wide graph stays readable, pan and zoom show the rest.
    drawing.style.height = `${Math.max(240, Math.min(h, window.innerHeight * 0.7))}px`;
    const width = drawing.clientWidth, height = drawing.clientHeight;
    setView(w <= width && h <= height ? whole
      : { x, y: y + Math.max(0, (h - height) / 2), w: width, h: height });
    const result = graph.result;
    document.getElementById("graph-id").textContent = graph.id;
    document.getElementById("graph-summary").textContent = result
      ? `Output ${result.output} = ${number(result.value)}; ${result.nodes} nodes.`
      : "";
    document.getElementById("drawing-card").scrollIntoView({ block: "start" });
    drawing.dataset.drawn = graph.id;
  }

  async function run(work) {
    clearProblem(box);
    try {
      await work();
    } catch (error) {
      showProblem(box, error);
    }
  }

  gradserve.start(() => {
    const textarea = document.getElementById("graph-document");
    panAndZoom();
    document.getElementById("graph-form").addEventListener("submit", (event) => {
      event.preventDefault();
      run(async () => {
        layoutWorker(); // viz.js starts while the graph is evaluated, if it has not yet
        const body = uploaded ?? textarea.value;
        const posted = await api("/v1/graphs", { method: "POST", body, headers: PREFER });
        const graph = await evaluated(posted);
        history.replaceState(null, "", `/graphs/${encodeURIComponent(graph.id)}`);
        await draw(graph);
      });
    });
    document.getElementById("example").addEventListener("click", () => run(async () => {
      const response = await fetch(main.dataset.exampleUrl);
      typed();
      textarea.value = await response.text();
    }));
    const placeholder = textarea.placeholder;
    const typed = () => { uploaded = null; textarea.placeholder = placeholder; };
    textarea.addEventListener("input", typed);
    // viz.js starts as a document is given, not when the first drawing is due
    for (const given of ["example", "graph-file", "graph-document"]) {
      document.getElementById(given).addEventListener(given === "example" ? "click" : "input", layoutWorker);
    }
    document.getElementById("graph-file").addEventListener("change", (event) => run(async () => {
      const [file] = event.target.files;
      if (!file) return;
      const text = await file.text();
      typed();
      if (text.length <= SHOWN_MAX) {
        textarea.value = text;
        return;
      }
      uploaded = text;
      textarea.value = "";
      textarea.placeholder = `${file.name} (${Math.round(text.length / 1024)} KiB) is uploaded, `
        + "too large to show here: Evaluate sends it. Type or paste here to send a document instead.";
    }));
    if (main.dataset.graphId) {
      const path = `/v1/graphs/${encodeURIComponent(main.dataset.graphId)}`;
      layoutWorker();
      run(async () => draw(await evaluated(await api(path, { headers: PREFER }))));
    }
  });
})();

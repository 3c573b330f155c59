// A model's page: its architecture and metrics and, for 2-input models, micrograd's demo
// picture: the model's prediction over a grid, the training data on top.
"use strict";

(() => {
  const { api, el, showProblem, number } = gradserve;
  const modelId = gradserve.main().dataset.modelId;
  const GRID = 60; // cells a side: 3,600 rows in one predict call
  const MARGIN = 1; // around the data, as micrograd's demo draws it
  const CLASS_COLOURS = ["#c0392b", "#2471a3", "#27ae60", "#8e44ad", "#d68910", "#17a589"];
  const SHADES = ["#f2c4bf", "#bed4e6", "#bfe6cf", "#dcc6e6", "#f3dcb4", "#b9e3dc"]; // opaque: no seams

  function facts(list, entries) {
    list.replaceChildren(...entries.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
  }

  /** The class of each output: argmax for ce, the sign for one output (hinge, mse, bce's logit). */
  function classes(prediction, loss) {
    if (loss === "ce") return prediction.probabilities.map((p) => p.indexOf(Math.max(...p)));
    return prediction.y.map((y) => (Array.isArray(y) ? y[0] : y) > 0 ? 1 : 0);
  }

  function labelClass(label, loss) {
    if (loss === "ce") return label;
    return (Array.isArray(label) ? label[0] : label) > (loss === "bce" ? 0.5 : 0) ? 1 : 0;
  }

  async function boundary(model) {
    const data = await api(`/v1/jobs/${encodeURIComponent(model.job_id)}/data?generated=true`);
    const xs = data.x.map((r) => r[0]), ys = data.x.map((r) => r[1]);
    const x0 = Math.min(...xs) - MARGIN, x1 = Math.max(...xs) + MARGIN;
    const y0 = Math.min(...ys) - MARGIN, y1 = Math.max(...ys) + MARGIN;
    const grid = [];
    for (let j = 0; j < GRID; j++) {
      for (let i = 0; i < GRID; i++) {
        grid.push([x0 + ((i + 0.5) * (x1 - x0)) / GRID, y1 - ((j + 0.5) * (y1 - y0)) / GRID]);
      }
    }
    const predicted = classes(await api(`/v1/models/${encodeURIComponent(modelId)}/predict`,
      { method: "POST", body: { x: grid } }), model.loss);
    const canvas = document.getElementById("boundary");
    const context = canvas.getContext("2d");
    const { width, height } = canvas;
    const cell = [width / GRID, height / GRID];
    predicted.forEach((k, n) => {
      context.fillStyle = SHADES[k % SHADES.length];
      const left = Math.floor((n % GRID) * cell[0]), top = Math.floor(Math.floor(n / GRID) * cell[1]);
      context.fillRect(left, top, Math.ceil(cell[0]) + 1, Math.ceil(cell[1]) + 1);
    });
    context.strokeStyle = "#111";
    data.x.forEach(([x, y], n) => {
      context.beginPath();
      context.arc(((x - x0) / (x1 - x0)) * width, ((y1 - y) / (y1 - y0)) * height, 5, 0, 2 * Math.PI);
      context.fillStyle = CLASS_COLOURS[labelClass(data.y[n], model.loss) % CLASS_COLOURS.length];
      context.fill();
      context.stroke();
    });
    canvas.dataset.drawn = String(data.x.length);
    canvas.setAttribute("aria-label", `Decision boundary over ${data.x.length} training points, x from `
      + `${number(x0, 2)} to ${number(x1, 2)}, y from ${number(y0, 2)} to ${number(y1, 2)}`);
  }

  gradserve.start(async () => {
    try {
      const model = await api(`/v1/models/${encodeURIComponent(modelId)}`);
      facts(document.getElementById("architecture"), [
        ["Inputs", String(model.model.inputs)],
        ["Layers", model.model.layers.join(" → ")],
        ["Activation", model.model.activation],
        ["Loss", model.loss],
        ["Parameters", String(model.parameters.length)],
        ["Trained by", el("a", { href: `/jobs/${encodeURIComponent(model.job_id)}` }, model.job_id)],
      ]);
      facts(document.getElementById("metrics"), Object.entries(model.metrics || {})
        .map(([name, value]) => [name, number(value)]));
      if (model.model.inputs === 2) {
        document.getElementById("boundary-card").hidden = false;
        await boundary(model);
      }
    } catch (error) {
      showProblem(document.getElementById("model-problem"), error);
    }
  });
})();

// Lays a DOT drawing out with Graphviz (viz.js) off the page's thread: a graph that takes
// long to lay out (hundreds of edges into one node) never freezes the page, and the page
// ends this worker when it takes too long (graphs.js).
"use strict";

importScripts("vendor/viz/viz-global.js");
const ready = Viz.instance();

onmessage = async (event) => {
  try {
    const viz = await ready;
    postMessage({ svg: viz.renderString(event.data, { format: "svg" }) });
  } catch (error) {
    postMessage({ error: String((error && error.message) || error) });
  }
};

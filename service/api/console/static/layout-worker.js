// Lays DOT drawings out with Graphviz (viz.js) off the page's thread: a graph that takes
// long to lay out (hundreds of edges into one node) never freezes the page, and the page
// ends this worker when one takes too long (graphs.js); else it keeps it for the next.
"use strict";

importScripts("vendor/viz/viz-global.js");
const ready = Viz.instance();

// Each message is {id, dot}; each answer {id, svg} or {id, error}, in the order asked.
onmessage = async ({ data: { id, dot } }) => {
  try {
    const viz = await ready;
    postMessage({ id, svg: viz.renderString(dot, { format: "svg" }) });
  } catch (error) {
    postMessage({ id, error: String((error && error.message) || error) });
  }
};

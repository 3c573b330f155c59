"""POST /v1/graphs evaluates a graph/1 document; GET /v1/graphs/{id} reads the result, as
JSON or drawn as DOT."""

from flask import Response, current_app, request
from flask.views import MethodView

from engine import evaluate, to_dot
from engine.columns import GraphColumns, is_packed, pack, unpack
from engine.compiled.evaluate import result_json as columns_result_json
from engine.evaluate import parse as parse_graph
from engine.graph import ParsedGraph
from engine.value import paused_gc
from schemas import GraphResourceSchema, GraphSchema

from ...errors import GraphNotEvaluated, NotFound
from ...store.graphs import summary_json
from ...store.keys import Keys
from ...store.queue import graph_enqueuer
from ...strictjson import dumps, fast_dumps, fast_loads, loads
from ..auth import tenant
from ..concurrency import run_cpu_bound
from ..extensions import services
from ..graphbody import GraphBlueprint, vouched
from ..negotiation import negotiate
from ..prefer import applied, prefers_async, prefers_minimal, wait_until_finished, waiting

blp = GraphBlueprint(
    "graphs",
    __name__,
    url_prefix="/v1/graphs",
    description="Forward values and gradients of graph/1 expression graphs.",
)
LOCATION = {"Location": {"description": "The graph resource.", "schema": {"type": "string"}}}
EXAMPLE = {
    "format": "graph/1",
    "output": "c",
    "nodes": [
        {"id": "a", "op": "input", "value": -4.0},
        {"id": "b", "op": "input", "value": 2.0},
        {"id": "ab", "op": "mul", "inputs": ["a", "b"]},
        {"id": "c", "op": "pow", "inputs": ["ab"], "attrs": {"exponent": 2}},
    ],
}


JSON, DOT = "application/json", "text/vnd.graphviz"
SERVED = [JSON, DOT]
"""The graph resource's representations (the first is the default)."""
REPRESENTATIONS = (
    f"The graph resource (`{JSON}`), or the evaluated graph drawn as Graphviz DOT (`{DOT}`; "
    "charset utf-8): a record per node with its id, op, value and gradient, as the micrograd "
    "lectures draw them; over 200 nodes, the 200 nearest the output, with a note saying how "
    "many there are."
)
ACCEPT = {
    "in": "header",
    "name": "Accept",
    "schema": {"type": "string", "default": JSON},
    "description": f"`{JSON}` (also `*/*`, or none) for the graph resource; `{DOT}` for the "
    "evaluated graph drawn as Graphviz DOT. Anything else is a 406.",
}


def parse(document: dict, max_nodes: int) -> ParsedGraph | GraphColumns:
    """A small graph as a ParsedGraph; a large one as columns (engine.columns)."""
    with paused_gc():  # no cycles to collect in a graph's parse or its evaluation
        return parse_graph(document, max_nodes=max_nodes)


def evaluated(parsed: ParsedGraph | GraphColumns) -> str | bytes:
    """The result as JSON text: a large graph's written from its arrays."""
    with paused_gc():
        if isinstance(parsed, GraphColumns):
            return columns_result_json(parsed)
        return fast_dumps(evaluate(parsed))


def drawn(document: bytes, result_json: bytes) -> str:
    """The DOT of a stored graph. A large one is drawn from its columns and reads only the
    nodes it draws, from the result's JSON as the worker wrote it (a million-node graph:
    0.15 to 0.3 s, where its document took 6 s). A result is the service's own JSON."""
    with paused_gc():
        if is_packed(document):
            return to_dot(unpack(document), result_json)
        return to_dot(loads(document), fast_loads(result_json))


FINISHED = ("succeeded", "failed")
PREFER = {
    "in": "header",
    "name": "Prefer",
    "schema": {"type": "string"},
    "description": "`respond-async` queues the graph (202). `wait=N` (RFC 7240; at most "
    "MAX_WAIT, 60 s unless configured) holds the answer of a queued graph up to N seconds "
    "until it is evaluated: 201 with its result (or its error) if it finished by then, else "
    "202. Together, `respond-async, wait=N` queues any graph and answers within N seconds, "
    "as RFC 7240 describes. `return=minimal`: the result as its summary only (`output`, "
    "`value`, `nodes`: the graph's count of nodes), without every node's values and "
    "gradients (still stored: a GET without it reads them). `Preference-Applied` lists what "
    "was honoured.",
}
PREFER_WAIT = {
    "in": "header",
    "name": "Prefer",
    "schema": {"type": "string"},
    "description": "`wait=N` (RFC 7240; at most MAX_WAIT, 60 s unless configured): hold "
    "the answer up to N seconds until the graph is evaluated. `return=minimal` (JSON only): "
    "the result as its summary (`output`, `value`, `nodes`), read without the values and "
    "gradients of every node: a poll of a large graph, or a page that draws it as DOT. "
    "`Preference-Applied` says what was honoured.",
}
Found = tuple[str, bytes | None, dict | None]


def waited(graph_id: str, found: Found, seconds: int, minimal: bool) -> Found:
    """The graph once it has been evaluated (or failed), or as it is after `seconds`
    (`minimal`: its result's summary)."""
    if found[0] in FINISHED:
        return found
    graphs, owner = services().graphs, tenant()
    latest = wait_until_finished(
        Keys.changed_graph(graph_id),
        lambda: graphs.get(graph_id, tenant=owner, minimal=minimal),
        lambda now: now[0] in FINISHED,
        seconds,
    )
    return latest or found  # expired meanwhile: as it was


def graph_json(
    graph_id: str, status: str, result_json: str | bytes | None = None, error: dict | None = None
) -> bytes:
    """The graph resource, its result spliced in as the JSON text it is stored as (a
    500,000-node result is never decoded and encoded again, nor copied to a str)."""
    parts = [f'{{"id":{dumps(graph_id)},"status":{dumps(status)}'.encode()]
    if result_json is not None:
        text = result_json.encode() if isinstance(result_json, str) else result_json
        parts += (b',"result":', text)
    if error is not None:
        parts.append(f',"error":{dumps(error)}'.encode())
    parts.append(b"}")
    return b"".join(parts)


def graph_body(
    graph_id: str, status: str, result_json: str | bytes | None = None, error: dict | None = None
) -> Response:
    return Response(graph_json(graph_id, status, result_json, error), mimetype=JSON)


@blp.route("")
class Graphs(MethodView):
    @blp.arguments(GraphSchema(), example=EXAMPLE)  # an instance: not one per request
    @blp.response(
        201, GraphResourceSchema, description="Evaluated in the request.", headers=LOCATION
    )
    @blp.alt_response(
        202,
        schema=GraphResourceSchema,
        headers=LOCATION,
        description="Queued: a large graph, or `Prefer: respond-async`. Poll the Location.",
    )
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(413, response="REQUEST_ENTITY_TOO_LARGE")
    @blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
    @blp.doc(parameters=[PREFER])
    def post(self, document: dict) -> Response:
        """Evaluate a graph: small ones in the request, large ones on a worker."""
        config, graphs = current_app.config, services().graphs
        body = request.get_data(cache=True)  # stored as it came, to be evaluated and drawn
        parsed = vouched(document)  # a large graph: validated with its JSON (graphbody.py)
        if parsed is None:
            parsed = run_cpu_bound(len(body), parse, document, config["MAX_GRAPH_NODES"])
        wants_async, minimal, honoured = prefers_async(), prefers_minimal(), []
        if wants_async or len(parsed.ids) > config["GRAPH_INLINE_MAX_NODES"]:
            # A large graph travels as its validated columns: the worker reads the arrays
            # as they are, with no JSON to parse and no ids to look up again.
            stored = pack(parsed) if isinstance(parsed, GraphColumns) else body
            graph_id = graphs.queue(
                stored, config["GRAPH_TTL"], graph_enqueuer(services().queue), tenant=tenant()
            )
            if wants_async:
                honoured.append("respond-async")
            found: Found = ("queued", None, None)
            with waiting() as seconds:
                if seconds is not None:
                    found = waited(graph_id, found, seconds, minimal)
                    honoured.append(f"wait={seconds}")
            response = graph_body(graph_id, *found)
            response.status_code = 201 if found[0] in FINISHED else 202
        else:
            nodes = len(parsed.ids)
            result_json = run_cpu_bound(len(body), evaluated, parsed)
            graph_id = graphs.save_result(
                result_json, config["GRAPH_TTL"], body, tenant=tenant(), nodes=nodes
            )
            shown = summary_json(result_json, nodes) if minimal else result_json
            response = graph_body(graph_id, "succeeded", shown)
            response.status_code = 201
        if minimal:
            honoured.append("return=minimal")
        response.headers["Location"] = f"/v1/graphs/{graph_id}"
        return applied(response, *honoured)


@blp.route("/<graph_id>")
class Graph(MethodView):
    @blp.response(200, GraphResourceSchema, content_type=JSON, description=REPRESENTATIONS)
    @blp.alt_response(
        200, success=True, content_type=DOT, schema={"type": "string"}, description=REPRESENTATIONS
    )
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(406, response="NOT_ACCEPTABLE")
    @blp.alt_response(409, response="CONFLICT")
    @blp.doc(parameters=[ACCEPT, PREFER_WAIT])
    def get(self, graph_id: str) -> Response:
        """A graph evaluation, or its picture as DOT.

        JSON: queued, running, succeeded (with its result, or with `Prefer: return=minimal`
        its summary) or failed (with its problem).
        DOT (`Accept: text/vnd.graphviz`): the evaluated graph; a graph that is queued,
        running or failed has none to draw (409, a problem naming its status). Any other
        `Accept` is a 406 listing the types served."""
        representation = negotiate(SERVED)
        minimal = representation == JSON and prefers_minimal()  # DOT reads the whole result
        graphs = services().graphs
        found = graphs.get(graph_id, tenant=tenant(), minimal=minimal)
        if found is None:
            raise NotFound("graph", graph_id)
        honoured = []
        with waiting() as seconds:
            if seconds is not None:
                found = waited(graph_id, found, seconds, minimal)
                honoured.append(f"wait={seconds}")
        if minimal:
            honoured.append("return=minimal")
        status, result_json, error = found
        if representation == JSON:
            response = graph_body(graph_id, status, result_json, error)
        else:
            document = graphs.document(graph_id) if status == "succeeded" else None
            if document is None or result_json is None:
                raise GraphNotEvaluated(graph_id, status, error and error.get("title"))
            weight = len(document) + len(result_json)
            response = Response(run_cpu_bound(weight, drawn, document, result_json), mimetype=DOT)
        response.vary.add("Accept")
        return applied(response, *honoured)

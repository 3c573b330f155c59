"""The `gradserve` command: submit and follow jobs, read them, predict, evaluate graphs.

Results go to stdout as JSON (CSV for `history --csv`, DOT for `graph eval --dot`); the
progress bar and errors go to stderr. Exit codes: 0 done; 1 the API answered with an
error (its problem on stderr); 2 a usage error (bad arguments or input file); 3 the API
could not be reached; 4 a followed job ended failed or cancelled; 130 interrupted."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from . import errors
from ._version import __version__
from .client import DEFAULT_URL, Client
from .jobs import TERMINAL

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_CONNECTION, EXIT_JOB, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
KEY_FILE = Path("var/api-key")
"""Where `make run` writes tenant local's key, relative to the stack's directory."""


class UsageError(Exception):
    """A bad argument or input file: exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with Client(args.url, api_key()) as client:
            return args.run(client, args)
    except UsageError as exc:
        print(f"gradserve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except errors.APIError as exc:
        print_problem(exc)
        return EXIT_API
    except errors.GradserveError as exc:  # unreachable, dropped, timed out
        print(f"gradserve: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `gradserve ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def api_key() -> str | None:
    """GRADSERVE_API_KEY, else the key a local `make run` wrote to ./var/api-key."""
    key = os.environ.get("GRADSERVE_API_KEY")
    if key:
        return key.strip()
    try:
        return KEY_FILE.read_text().strip() or None
    except OSError:
        return None


def print_problem(error: errors.APIError) -> None:
    """The problem's title and status, its detail, and each bad place, on stderr."""
    print(f"gradserve: {error.title or 'error'} ({error.status})", file=sys.stderr)
    if error.detail:
        print(error.detail, file=sys.stderr)
    for entry in error.problem.get("errors") or []:
        print(f"  {entry.get('path') or '(body)'}: {entry.get('message')}", file=sys.stderr)


def emit(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def read_json(name: str) -> Any:
    """A JSON file (`-`: stdin); UsageError naming it when it cannot be read."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        return json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{name} is not JSON: {exc}") from None


def pairs(values: list[str] | None) -> dict[str, str]:
    result = {}
    for value in values or []:
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise UsageError(f"--metadata takes KEY=VALUE, not {value!r}")
        result[key] = item
    return result


# The commands: each takes the client and the parsed arguments, returns the exit code.


def submit(client: Client, args: argparse.Namespace) -> int:
    spec = read_json(args.spec)
    if not isinstance(spec, dict):
        raise UsageError(f"{args.spec} must hold a JSON object (a job spec)")
    metadata = pairs(args.metadata)
    if metadata:
        spec = {**spec, "metadata": {**spec.get("metadata", {}), **metadata}}
    job = client.jobs.create(spec)
    if not args.wait:
        emit(job)
        return EXIT_OK
    print(f"gradserve: job {job['id']} {job['status']}", file=sys.stderr)
    try:
        job = follow(client, job)
    except KeyboardInterrupt:
        print(
            f"\ngradserve: stopped following; job {job['id']} goes on "
            f"(gradserve cancel {job['id']} stops it)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    emit(job)
    if job["status"] != "succeeded":
        problem = job.get("error") or {}
        print(f"gradserve: job {job['id']} {job['status']}", file=sys.stderr)
        if problem:
            print_problem(errors.APIError(problem.get("status") or 0, problem))
        return EXIT_JOB
    return EXIT_OK


def follow(client: Client, job: dict[str, Any]) -> dict[str, Any]:
    """Draw the job's progress from its events stream until it is terminal; that job."""
    total = (job.get("progress") or {}).get("steps") or job["spec"].get("steps")
    bar = tqdm(total=total, unit="step", desc=job["status"], file=sys.stderr, dynamic_ncols=True)
    try:
        for event in client.jobs.stream(job["id"]):
            if event.event == "status":
                job = event.data
                bar.set_description_str(job["status"])
            elif event.event == "progress":
                data = event.data
                bar.update(data["step"][-1] + 1 - bar.n)
                postfix = {"loss": f"{data['loss'][-1]:.4g}"}
                if data["accuracy"][-1] is not None:
                    postfix["acc"] = f"{data['accuracy'][-1]:.3f}"
                bar.set_postfix(postfix, refresh=False)
    finally:
        bar.close()
    if job["status"] not in TERMINAL:  # the stream ended early: ask for the final state
        job = client.jobs.wait(job["id"])
    return job


def jobs_list(client: Client, args: argparse.Namespace) -> int:
    metadata = pairs(args.metadata)
    if args.all:
        emit(list(client.jobs.list_all(status=args.status, metadata=metadata, limit=args.limit)))
    else:
        page = client.jobs.list(
            status=args.status, metadata=metadata, limit=args.limit, cursor=args.cursor
        )
        emit(page)
    return EXIT_OK


def jobs_show(client: Client, args: argparse.Namespace) -> int:
    emit(client.jobs.get(args.id))
    return EXIT_OK


def history(client: Client, args: argparse.Namespace) -> int:
    found = client.jobs.history(args.id, since=args.since)
    if not args.csv:
        emit(found)
        return EXIT_OK
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["step", "loss", "accuracy"])
    for row in zip(found["step"], found["loss"], found["accuracy"], strict=True):
        writer.writerow(["" if value is None else repr(value) for value in row])
    return EXIT_OK


def predict(client: Client, args: argparse.Namespace) -> int:
    given = read_json(args.x)
    x = given.get("x") if isinstance(given, dict) else given
    if not isinstance(x, list):
        raise UsageError(f'{args.x} must hold rows of numbers, or {{"x": rows}}')
    emit(client.models.predict(args.model_id, x))
    return EXIT_OK


def graph_eval(client: Client, args: argparse.Namespace) -> int:
    document = read_json(args.file)
    if not isinstance(document, dict):
        raise UsageError(f"{args.file} must hold a JSON object (a graph/1 document)")
    evaluated = client.graphs.evaluate(document)
    if not args.dot:
        emit(evaluated)
        return EXIT_OK
    if evaluated["status"] != "succeeded":  # queued (a large graph): wait for it
        evaluated = client.graphs.wait(evaluated["id"], minimal=True)
    if evaluated["status"] == "failed":  # nothing to draw: the problem, as a failed job's
        emit(evaluated)
        print_problem(errors.APIError(evaluated["error"].get("status") or 0, evaluated["error"]))
        return EXIT_JOB
    sys.stdout.write(client.graphs.dot(evaluated["id"]))
    return EXIT_OK


def cancel(client: Client, args: argparse.Namespace) -> int:
    emit(client.jobs.cancel(args.id))
    return EXIT_OK


def delete(client: Client, args: argparse.Namespace) -> int:
    client.jobs.delete(args.id)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gradserve",
        description="gradserve's HTTP API from the command line. The API key comes from "
        "GRADSERVE_API_KEY, else ./var/api-key (what `make run` writes).",
        epilog="exit codes: 0 done, 1 API error, 2 usage error, 3 API unreachable, "
        "4 the job failed or was cancelled",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("GRADSERVE_URL", DEFAULT_URL),
        help="the API's base URL (default: GRADSERVE_URL, else %(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"gradserve {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    command = commands.add_parser("submit", help="submit a training job (a JSON spec)")
    command.add_argument("spec", metavar="SPEC.json", help="the job spec (- for stdin)")
    command.add_argument(
        "--wait", action="store_true", help="follow it with a progress bar until it ends"
    )
    command.add_argument(
        "--metadata", action="append", metavar="K=V", help="a metadata pair (repeatable)"
    )
    command.set_defaults(run=submit)

    jobs = commands.add_parser("jobs", help="list jobs, or show one").add_subparsers(
        dest="jobs_command", required=True, metavar="COMMAND"
    )
    command = jobs.add_parser("list", help="your jobs, newest first (a page, or --all)")
    command.add_argument("--status", choices=["queued", "running", *sorted(TERMINAL)])
    command.add_argument(
        "--metadata", action="append", metavar="K=V", help="only jobs with this pair"
    )
    command.add_argument("--limit", type=int, help="jobs per page")
    command.add_argument("--cursor", help="the page after this next_cursor")
    command.add_argument("--all", action="store_true", help="every page, as one JSON list")
    command.set_defaults(run=jobs_list)
    command = jobs.add_parser("show", help="one job")
    command.add_argument("id")
    command.set_defaults(run=jobs_show)

    command = commands.add_parser("history", help="a job's loss and accuracy per step")
    command.add_argument("id")
    command.add_argument("--since", type=int, help="from this step on")
    command.add_argument("--csv", action="store_true", help="CSV (step,loss,accuracy)")
    command.set_defaults(run=history)

    command = commands.add_parser("predict", help="a model's outputs for rows of inputs")
    command.add_argument("model_id")
    command.add_argument("x", metavar="X.json", help='rows of numbers, or {"x": rows}')
    command.set_defaults(run=predict)

    graph = commands.add_parser("graph", help="graph/1 documents").add_subparsers(
        dest="graph_command", required=True, metavar="COMMAND"
    )
    command = graph.add_parser("eval", help="values and gradients of a graph/1 document")
    command.add_argument("file", metavar="FILE.json")
    command.add_argument("--dot", action="store_true", help="print it drawn as Graphviz DOT")
    command.set_defaults(run=graph_eval)

    command = commands.add_parser("cancel", help="cancel a queued or running job")
    command.add_argument("id")
    command.set_defaults(run=cancel)
    command = commands.add_parser("delete", help="delete a job (cancelled first if it runs)")
    command.add_argument("id")
    command.set_defaults(run=delete)
    return parser

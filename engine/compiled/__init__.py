"""The compiled path: a scalar graph traced once, lowered to a flat program, run with numpy.

    trace(outputs, inputs, params) -> Tape     record a Value graph (tape.py)
    compile_program(tape) -> Program           fuse, group by level and op (program.py)
    program.forward(params, X), .backward(dZ)  a whole batch at once
    evaluate_compiled(parsed)                  graph/1 on the same machinery (evaluate.py)
    CompiledBackend                            training's engine "compiled" (backend.py)

The Value engine stays the reference: every kernel here computes what its ops compute.
"""

from .backend import CompiledBackend
from .evaluate import evaluate_compiled
from .program import Program, compile_program
from .tape import Tape, from_parsed, trace

__all__ = [
    "CompiledBackend",
    "Program",
    "Tape",
    "compile_program",
    "evaluate_compiled",
    "from_parsed",
    "trace",
]

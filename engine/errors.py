"""The engine's exceptions: bad input is a ValueError, math without a finite answer an
ArithmeticError. Each carries what a caller needs to point at the problem."""


class InvalidInput(ValueError):
    """A document (graph or training spec) that breaks the contract; `errors` lists
    `{"path": "nodes/3/inputs/0", "message": "..."}` entries, first problem first."""

    def __init__(self, errors):
        self.errors = list(errors)
        first = self.errors[0]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        where = f"{first['path']}: " if first["path"] else ""
        super().__init__(f"{where}{first['message']}{more}")


class GraphError(InvalidInput):
    """A `graph/1` document that is not valid."""


class SpecError(InvalidInput):
    """A training spec that is not valid."""


class NumericError(ArithmeticError):
    """An operation whose result is not a finite number (log of 0, overflow, 1/0, ...).

    `op` names the operation and `value` is the Value whose gradient failed, if any;
    `node` (a graph node id) and `step` (a training step) are filled in by whoever knows them.
    """

    def __init__(self, message, op=None, value=None, node=None, step=None):
        super().__init__(message)
        self.op, self.value, self.node, self.step = op, value, node, step

"""/v1/models: trained networks and their predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .transport import Transport


class Models:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def get(self, model_id: str) -> dict[str, Any]:
        """Architecture, loss, parameters and final metrics."""
        return self._t.json("GET", f"/v1/models/{model_id}")

    def predict(self, model_id: str, x: Sequence[Sequence[float]]) -> dict[str, Any]:
        """{"y": one output per row} (and "probabilities" for bce and ce models)."""
        rows = [list(row) for row in x]
        return self._t.json("POST", f"/v1/models/{model_id}/predict", json={"x": rows})

    def delete(self, model_id: str) -> None:
        self._t.request("DELETE", f"/v1/models/{model_id}")

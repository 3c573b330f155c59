"""Content negotiation (RFC 9110 section 12): the representation a request's `Accept` asks
for among those a resource serves."""

from flask import request

from ..errors import NotAcceptable


def negotiate(served: list[str]) -> str:
    """The best of `served` for the request's Accept, q-values and wildcards weighed; the
    first when there is no Accept (as for `*/*`). None acceptable: 406 listing them."""
    accept = request.accept_mimetypes
    chosen = accept.best_match(served) if accept else served[0]
    if chosen is None:
        raise NotAcceptable(served)
    return chosen

"""The API's contract: the OpenAPI document the service serves at /openapi.json, in the form
the repository keeps it (openapi.json at its root, written by the `openapi` command).

The kept form is the served document without the extensions its library adds (keys that
start with "x-"), its keys sorted: the same document whichever framework serves the API.
The tests fail when the served document and the kept one differ, and so does CI.
"""

import json
from typing import Any

FILENAME = "openapi.json"


def contract(document: Any) -> Any:
    """The document without its extensions."""
    if isinstance(document, dict):
        return {key: contract(value) for key, value in document.items() if not key.startswith("x-")}
    if isinstance(document, list):
        return [contract(value) for value in document]
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(contract(document), indent=2, sort_keys=True) + "\n"

"""The API's contract: the OpenAPI document the service serves at /openapi.json, in the form
the repository keeps it (openapi.json at its root, written by the `openapi` command).

The kept form is the served document without the extensions its library adds (keys that
start with "x-"), its keys sorted: the same document whichever framework serves the API.
The tests fail when the served document and the kept one differ, and so does CI.
"""

import json
from importlib.metadata import metadata
from typing import Any

FILENAME = "openapi.json"
# The distribution (pyproject.toml) whose version and license the document gives, and the
# document's title.
NAME = "{{ cookiecutter.project_slug }}"
TITLE = {{ cookiecutter.project_name | tojson }}
# Where the API is served: relative to the document's own URL, wherever the service runs.
SERVERS = [{"url": "/"}]
# No operation asks for credentials: who may call the service is the network's decision (the
# NetworkPolicies and the Ingress), so the document says so once for all.
SECURITY: list[dict[str, list[str]]] = []


def publish(document: dict[str, Any]) -> None:
    """Add to a library's document what no library tells from the code: the servers, the
    security and the license of the project's distribution."""
    expression = metadata(NAME)["License-Expression"]
    document["info"]["license"] = {"name": expression, "identifier": expression}
    document["servers"] = SERVERS
    document["security"] = SECURITY


def contract(document: Any) -> Any:
    """The document without its extensions."""
    if isinstance(document, dict):
        return {key: contract(value) for key, value in document.items() if not key.startswith("x-")}
    if isinstance(document, list):
        return [contract(value) for value in document]
    return document


def render(document: dict[str, Any]) -> str:
    return json.dumps(contract(document), indent=2, sort_keys=True) + "\n"

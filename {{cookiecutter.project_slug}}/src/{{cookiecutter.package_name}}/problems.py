"""Every error of the API as a problem detail (RFC 9457), the same in every framework.

A problem is a JSON object sent as application/problem+json: `type` (about:blank: the
status says what happened), `title` (the status's name), `status` and `detail` (what
happened this time). An invalid request (422) adds `errors`, one per invalid part: its
`location` (body, query or path), a `pointer` (RFC 6901) into that part, and a `detail`.
See https://www.rfc-editor.org/rfc/rfc9457
"""

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import ErrorDetails

MEDIA_TYPE = "application/problem+json"

# The statuses the API answers with a problem, by the names RFC 9110 gives them (Python's
# own HTTPStatus phrases change between versions).
TITLES = {
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}

# The detail of each error that says the same every time.
NOT_FOUND = "Nothing at this path"
METHOD_NOT_ALLOWED = "The path does not accept this method: Allow lists those it does"
NOT_JSON = "The body must be JSON, sent as application/json"
MALFORMED_JSON = "The body is not valid JSON"
INVALID = "The request is invalid: errors lists each invalid part"
INTERNAL_ERROR = "The service failed to answer: its log has the details"
{%- if cookiecutter.database != "none" %}
DATABASE_UNAVAILABLE = "Database unavailable"
{%- endif %}
{%- if cookiecutter.worker != "none" %}
BROKER_UNAVAILABLE = "Broker unavailable"
{%- endif %}

Location = Literal["body", "query", "path"]


class Problem(BaseModel):
    """An error: its status, and what happened."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class InvalidPart(BaseModel):
    """One invalid part of a request: where it is, and what is wrong with it."""

    location: Location
    pointer: str
    detail: str


class ValidationProblem(Problem):
    """An invalid request (422): every invalid part of it."""

    errors: list[InvalidPart]


def problem(status: int, detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": TITLES[status], "status": status, "detail": detail}


def pointer(path: Sequence[int | str]) -> str:
    """The JSON Pointer to a value by its path of keys and indexes; "" is the whole part."""
    return "".join("/" + str(key).replace("~", "~0").replace("/", "~1") for key in path)


def invalid_parts(
    errors: Iterable[ErrorDetails], location: Location, within: Sequence[int | str] = ()
) -> list[dict[str, str]]:
    """pydantic's errors about one part of a request, as the problem's `errors`.

    `within` is where in the part the validated value lies: a path parameter's name, say.
    """
    return [
        {"location": location, "pointer": pointer([*within, *error["loc"]]), "detail": error["msg"]}
        for error in errors
    ]


def validation_problem(parts: list[dict[str, str]]) -> dict[str, Any]:
    return {**problem(422, INVALID), "errors": parts}

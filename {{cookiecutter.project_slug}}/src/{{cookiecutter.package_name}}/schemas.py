"""What the service answers besides its resources: about itself, and its health."""

from typing import Literal

from pydantic import BaseModel


class About(BaseModel):
    name: str
    version: str


class Liveness(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """Ready when every dependency is: `checks` says how each one is."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str]

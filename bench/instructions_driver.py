"""bench/instructions.py's driver, run by a baked project's Python under callgrind: it builds
the service's app as a `serve` process does (the metrics counted across processes, the
framework set up), answers a few requests to warm up, then answers N requests more with
callgrind counting (through the small library BENCH_CALLGRIND_LIBRARY names, which makes
valgrind's client requests), in-process: a WSGI call for Flask and Django, an ASGI one for
FastAPI, with no server or socket around it.

    python instructions_driver.py FRAMEWORK PACKAGE PATH N
"""

import asyncio
import ctypes
import importlib
import io
import os
import sys
from collections.abc import Callable
from typing import Any

WARM_UP = 20
HOST = "127.0.0.1"


def wsgi_requests(app: Callable[..., Any], path: str) -> Callable[[int], None]:
    def answer(count: int) -> None:
        for _ in range(count):
            environ = {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": path,
                "QUERY_STRING": "",
                "SERVER_NAME": HOST,
                "SERVER_PORT": "8000",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": HOST,
                "HTTP_HOST": f"{HOST}:8000",
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(),
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": False,
                "wsgi.multiprocess": True,
                "wsgi.run_once": False,
            }
            statuses: list[str] = []

            def start_response(status: str, _headers: object, _exc: object = None) -> None:
                statuses.append(status)  # noqa: B023 (called before the loop goes on)

            body = app(environ, start_response)
            b"".join(body)
            getattr(body, "close", lambda: None)()
            if not statuses[0].startswith("200"):
                raise SystemExit(f"driver: GET {path} answered {statuses[0]}")

    return answer


def asgi_requests(app: Any, path: str) -> Callable[[int], None]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", f"{HOST}:8000".encode())],
        "client": (HOST, 50000),
        "server": (HOST, 8000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def one() -> None:
        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(dict(scope), receive, send)
        if statuses != [200]:
            raise SystemExit(f"driver: GET {path} answered {statuses}")

    loop = asyncio.new_event_loop()
    # The app's lifespan (its engine, its task queue) runs around every request, as under
    # uvicorn.
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())

    def answer(count: int) -> None:
        async def many() -> None:
            for _ in range(count):
                await one()

        loop.run_until_complete(many())

    return answer


def main() -> None:
    framework, package, path, count = sys.argv[1:]
    callgrind = ctypes.CDLL(os.environ["BENCH_CALLGRIND_LIBRARY"])
    # As `serve` does, in this order (cli.py).
    importlib.import_module(f"{package}.metrics_server").share_across_processes("serve")
    importlib.import_module(f"{package}.server").setup()
    if framework == "django":
        answer = wsgi_requests(importlib.import_module(f"{package}.wsgi").application, path)
    else:
        app = importlib.import_module(f"{package}.app").create_app()
        answer = (asgi_requests if framework == "fastapi" else wsgi_requests)(app, path)
    answer(WARM_UP)
    callgrind.start()
    answer(int(count))
    callgrind.stop()


if __name__ == "__main__":
    main()

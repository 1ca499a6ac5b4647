from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# fixtures of the real services (PostgreSQL, Redis, S3) the scale-out tests use; loopback
# receivers of webhooks and of OTLP traces
pytest_plugins = ["tests.services", "tests.webhook_receiver", "tests.otlp_receiver"]

TESTS = Path(__file__).parent
#: layers of real processes and browsers: `-m "not slow"` leaves them out
SLOW_LAYERS = {"acceptance", "browser", "fault"}
#: a marker per real service, put on every test using one of its fixtures
SERVICE_FIXTURES = {
    "postgres": {
        "postgres_admin_url",
        "postgres_databases",
        "postgres_url",
        "postgres_for_module",
        "shared_postgres",
        "local_postgres",
    },
    "redis": {"redis_url"},
    "s3": {"s3_process", "s3_server"},
}
#: per-test limits (pytest-timeout; setup and teardown included): a fast test that needs more
#: than FAST_SECONDS is a bug to fix, not a limit to raise
FAST_SECONDS, SLOW_SECONDS = 10, 60


def services_of(item: pytest.Item) -> set[str]:
    """The services an item needs: by the fixtures it requests (the closure, so also through
    other fixtures), or by a fixture parameter naming the service (a parametrized fixture that
    fetches it with `request.getfixturevalue`)."""
    used = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    params = set(map(str, callspec.params.values())) if callspec else set()
    return {
        name for name, fixtures in SERVICE_FIXTURES.items() if used & fixtures or name in params
    }


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        layer = item.path.relative_to(TESTS).parts[0] if item.path.is_relative_to(TESTS) else ""
        slow = layer in SLOW_LAYERS
        if slow:
            item.add_marker(pytest.mark.slow)
        if layer == "browser":
            item.add_marker(pytest.mark.browser)
        for service in sorted(services_of(item)):
            item.add_marker(getattr(pytest.mark, service))
        if item.get_closest_marker("timeout") is None:  # a test's own limit wins
            item.add_marker(pytest.mark.timeout(SLOW_SECONDS if slow else FAST_SECONDS))


@pytest.fixture(autouse=True)
def _services_are_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test that reached a service its markers do not name (a fixture fetched by
    `request.getfixturevalue` that `services_of` cannot see): `-m "not postgres"` must mean it."""
    yield
    used = set(request.fixturenames)
    for name, fixtures in SERVICE_FIXTURES.items():
        if used & fixtures and request.node.get_closest_marker(name) is None:
            pytest.fail(f"uses {sorted(used & fixtures)} but is not marked {name!r}")


class ImageServer:
    """A real HTTP server on loopback serving scripted bodies by path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, str, bytes]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, ctype, body = server.routes.get(self.path, (404, "text/plain", b"nope"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: str, body: bytes, ctype: str = "image/png", status: int = 200) -> str:
        self.routes[path] = (status, ctype, body)
        return self.url + path


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    server.httpd.shutdown()
    server.httpd.server_close()

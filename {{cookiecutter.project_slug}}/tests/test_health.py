from fastapi.testclient import TestClient
{%- if cookiecutter.database != "none" %}

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.settings import Settings
{%- endif %}


def test_live(client: TestClient) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
{%- if cookiecutter.database != "none" %}


def test_ready_when_the_database_answers(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok"}}


def test_not_ready_while_the_database_is_unreachable(unreachable_database_url: str) -> None:
    settings = Settings(environment="test", database_url=unreachable_database_url)
    with TestClient(create_app(settings)) as client:
        assert client.get("/health/live").status_code == 200
        response = client.get("/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("unavailable: ")


def test_requests_fail_cleanly_while_the_database_is_unreachable(
    unreachable_database_url: str,
) -> None:
    settings = Settings(environment="test", database_url=unreachable_database_url)
    with TestClient(create_app(settings)) as client:
        response = client.get("/items")
    assert response.status_code == 503
    assert response.json() == {"detail": "Database unavailable"}
{%- else %}


def test_ready_without_dependencies(client: TestClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {}}
{%- endif %}


def test_about(client: TestClient) -> None:
    response = client.get("/")
    assert response.json() == {
        "name": "{{ cookiecutter.project_slug }}",
        "version": "{{ cookiecutter.version }}",
    }


def test_unknown_path_is_a_json_404(client: TestClient) -> None:
    response = client.get("/no-such-path")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}

{% if cookiecutter.database == "none" -%}
"""Shared fixtures: a test client of the application."""
{%- elif cookiecutter.database == "sqlite" -%}
"""Shared fixtures.

The tests run against a temporary SQLite file, migrated to the latest revision.
"""
{%- else -%}
"""Shared fixtures.

The tests run against a real database server: the one DATABASE_URL names (in the
environment, else in .env), in a database of their own, `test_<name>`, which they create,
migrate and drop. Where the server does not answer the database tests are skipped, unless
REQUIRE_SERVICES=1 (as in CI), where they fail.
"""
{%- endif %}
{% if cookiecutter.database in ("postgresql", "mysql") %}
import os
{%- endif %}
{%- if cookiecutter.framework == "fastapi" or cookiecutter.database != "none" %}
from collections.abc import Iterator
{% endif %}
import pytest
{%- if cookiecutter.database != "none" %}
from alembic import command
{%- endif %}
{%- if cookiecutter.framework == "fastapi" %}
from fastapi.testclient import TestClient
{%- else %}
from flask.testing import FlaskClient
{%- endif %}
{%- if cookiecutter.database == "sqlite" %}
from sqlalchemy import Engine, delete
{%- elif cookiecutter.database != "none" %}
from sqlalchemy import Engine, create_engine, delete, make_url, text
from sqlalchemy.exc import OperationalError
{%- endif %}

from {{ cookiecutter.package_name }}.app import create_app
{%- if cookiecutter.database != "none" %}
from {{ cookiecutter.package_name }}.database import (
    alembic_config,
{%- if cookiecutter.framework == "flask" %}
    get_engine,
{%- endif %}
    make_engine,
)
from {{ cookiecutter.package_name }}.items.models import Item
{%- endif %}
from {{ cookiecutter.package_name }}.settings import Settings
{%- if cookiecutter.database == "none" %}


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", _env_file=None)
{%- if cookiecutter.framework == "fastapi" %}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
{%- else %}


@pytest.fixture
def client(settings: Settings) -> FlaskClient:
    return create_app(settings).test_client()
{%- endif %}
{%- else %}
{%- if cookiecutter.database == "sqlite" %}


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('database') / 'test.db'}"


@pytest.fixture(scope="session")
def unreachable_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # A file in a directory that does not exist: SQLite cannot open it.
    return f"sqlite:///{tmp_path_factory.mktemp('database') / 'missing' / 'test.db'}"
{%- else %}

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
# A database every server has, to connect to while creating or dropping the test database.
{%- if cookiecutter.database == "postgresql" %}
MAINTENANCE_DATABASE = "postgres"
{%- else %}
MAINTENANCE_DATABASE = "information_schema"
{%- endif %}


def server_unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh test database on the server DATABASE_URL names, dropped at the end."""
    configured = make_url(Settings(environment="test").database_url)
    test_url = configured.set(database=f"test_{configured.database}")
    server = create_engine(
        configured.set(database=MAINTENANCE_DATABASE), isolation_level="AUTOCOMMIT"
    )
    name = server.dialect.identifier_preparer.quote(test_url.database)
    try:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
{%- if cookiecutter.database == "mysql" %}
            connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
{%- else %}
            connection.execute(text(f"CREATE DATABASE {name}"))
{%- endif %}
    except OperationalError as error:
        server_unavailable(f"database server unreachable: {error.orig}")
    yield test_url.render_as_string(hide_password=False)
    with server.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    server.dispose()


@pytest.fixture(scope="session")
def unreachable_database_url(database_url: str) -> str:
    # The same server on port 1, where nothing listens.
    return make_url(database_url).set(port=1).render_as_string(hide_password=False)
{%- endif %}


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> str:
    command.upgrade(alembic_config(database_url), "head")
    return database_url


@pytest.fixture(scope="session")
def engine(migrated_database: str) -> Iterator[Engine]:
    engine = make_engine(migrated_database)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(migrated_database: str) -> Settings:
    return Settings(environment="test", database_url=migrated_database)
{%- if cookiecutter.framework == "fastapi" %}


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
    with engine.begin() as connection:
        connection.execute(delete(Item))
{%- else %}


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[FlaskClient]:
    app = create_app(settings)
    yield app.test_client()
    # Close the app's pooled connections, as a stopping server does.
    get_engine(app).dispose()
    with engine.begin() as connection:
        connection.execute(delete(Item))
{%- endif %}
{%- endif %}

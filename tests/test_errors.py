"""The one error map: every class of the error tree raised in a route comes back out of the client as
the same class with the same one-line message, through the status and header of
``gpucommons.errors.ERROR_STATUS``; and the OpenAPI document lists, for every route, the error statuses
it can return with the ``{"detail": str}`` body.

None of these touch a database: the routes under test either raise at once or are refused by the
router before any dependency runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from gpucommons.backends.slurm_cli import SlurmCommandError
from gpucommons.client import GpucClient
from gpucommons.config import Settings
from gpucommons.errors import (
    ERROR_HEADER,
    ERROR_STATUS,
    AuthError,
    ConfigError,
    ConflictError,
    GpucError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    TraceError,
    UnknownNameError,
    error_class,
    status_for,
)
from gpucommons.service.app import create_app
from gpucommons.service.errors import install_error_handlers
from gpucommons.service.schemas.common import MAX_ID

ERRORS: dict[str, type[Exception]] = {cls.__name__: cls for cls in ERROR_STATUS}
ERRORS["SlurmCommandError"] = SlurmCommandError
ERRORS["RuntimeError"] = RuntimeError


def _raising_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{name}")
    def _raise(name: str, count: int = 0) -> dict[str, str]:
        raise ERRORS[name](f"{name} happened: job 'x' has\nno room")

    return app


@pytest.fixture
def http() -> Iterator[TestClient]:
    with TestClient(_raising_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def client(http: TestClient) -> GpucClient:
    return GpucClient("http://testserver", http=http)


@pytest.mark.parametrize("cls", list(ERROR_STATUS), ids=lambda c: c.__name__)
def test_every_error_class_round_trips_through_http(
    http: TestClient, client: GpucClient, cls: type[GpucError]
) -> None:
    response = http.get(f"/raise/{cls.__name__}")
    assert response.status_code == ERROR_STATUS[cls] == status_for(cls)
    assert response.headers[ERROR_HEADER] == cls.__name__
    assert response.json() == {"detail": f"{cls.__name__} happened: job 'x' has no room"}
    with pytest.raises(GpucError) as raised:
        client.request("GET", f"/raise/{cls.__name__}")
    assert type(raised.value) is cls
    assert str(raised.value) == f"{cls.__name__} happened: job 'x' has no room"


@pytest.mark.parametrize("cls", [ConfigError, TraceError, UnknownNameError], ids=lambda c: c.__name__)
def test_the_classes_sharing_400_are_told_apart(client: GpucClient, cls: type[GpucError]) -> None:
    """The client used to raise ``InvalidRequestError`` for every 400."""
    with pytest.raises(cls):
        client.request("GET", f"/raise/{cls.__name__}")


def test_a_subclass_defined_elsewhere_travels_as_its_listed_ancestor(
    http: TestClient, client: GpucClient
) -> None:
    response = http.get("/raise/SlurmCommandError")
    assert (response.status_code, response.headers[ERROR_HEADER]) == (400, "GpucError")
    with pytest.raises(GpucError) as raised:
        client.request("GET", "/raise/SlurmCommandError")
    assert type(raised.value) is GpucError


def test_validation_errors_are_invalid_requests(http: TestClient, client: GpucClient) -> None:
    response = http.get("/raise/ConfigError?count=many")
    assert response.status_code == 422 and response.headers[ERROR_HEADER] == "InvalidRequestError"
    assert response.json()["detail"].startswith("count: ")
    with pytest.raises(InvalidRequestError, match="count"):
        client.request("GET", "/raise/ConfigError", params={"count": "many"})


def test_a_bug_is_a_one_line_500_and_a_plain_error_in_the_client(
    http: TestClient, client: GpucClient
) -> None:
    response = http.get("/raise/RuntimeError")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "Traceback" not in response.text
    with pytest.raises(GpucError, match="server error 500") as raised:
        client.request("GET", "/raise/RuntimeError")
    assert type(raised.value) is GpucError


@pytest.mark.parametrize(
    ("status", "header", "want"),
    [
        (401, None, AuthError),
        (403, None, PermissionDeniedError),
        (404, None, NotFoundError),
        (409, None, ConflictError),
        (422, None, InvalidRequestError),
        (400, None, GpucError),  # three classes share 400: without the header only the base is certain
        (400, "UnknownNameError", UnknownNameError),
        (422, "ConfigError", InvalidRequestError),  # a header that contradicts the status is ignored
        (404, "NoSuchClass", NotFoundError),
        (418, None, GpucError),
    ],
)
def test_the_client_reads_status_and_header_from_the_same_table(
    status: int, header: str | None, want: type[GpucError]
) -> None:
    assert error_class(status, header) is want


# The OpenAPI document ----------------------------------------------------------------------------------

UNAUTHENTICATED = {("get", "/healthz"), ("get", "/metrics")}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("spec")
    app = create_app(Settings(home=home, database_url="sqlite://"), migrate=False)
    return app.openapi()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def test_every_route_documents_its_errors_with_the_detail_body(spec: dict[str, Any]) -> None:
    error_body = {"$ref": "#/components/schemas/ErrorRead"}
    for method, path, operation in _operations(spec):
        responses = operation["responses"]
        errors = {int(s) for s in responses if s.isdigit() and int(s) >= 400}
        if (method, path) in UNAUTHENTICATED:
            assert not errors, (method, path)
            continue
        assert 401 in errors, (method, path)
        if operation.get("parameters") or "requestBody" in operation:
            assert 422 in errors, (method, path)
        if "{" in path:
            assert 404 in errors, (method, path)
        for status in errors:
            assert responses[str(status)]["content"]["application/json"]["schema"] == error_body, (
                path,
                status,
            )
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # FastAPI's list-shaped 422 body


def test_metrics_is_in_the_document_as_text(spec: dict[str, Any]) -> None:
    content = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


def test_every_id_parameter_is_bounded(spec: dict[str, Any]) -> None:
    ids = [
        (path, p)
        for _, path, operation in _operations(spec)
        for p in operation.get("parameters", [])
        if p["name"].endswith("_id")
    ]
    assert len(ids) >= 20
    for path, parameter in ids:
        schema = parameter["schema"].get("anyOf", [parameter["schema"]])[0]
        assert (schema["minimum"], schema["maximum"]) == (1, MAX_ID), (path, parameter)


def test_a_method_a_path_does_not_serve_is_405_naming_every_method_it_does(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, database_url="sqlite://"), migrate=False)
    with TestClient(app) as http:
        options = http.options("/institutions")
        assert options.status_code == 405 and options.headers["allow"] == "GET, POST"
        # a static path beside an id path is not read as a malformed id
        expire = http.get("/awards/expire")
        assert expire.status_code == 405 and expire.headers["allow"] == "POST"
        assert http.get("/awards/x").status_code == 404


def test_a_body_that_is_not_even_text_is_a_one_line_422(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path, database_url="sqlite://"), migrate=False)
    with TestClient(app) as http:
        response = http.post(
            "/institutions", content=b"\xff\xfe{", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    assert response.headers[ERROR_HEADER] == "InvalidRequestError"
    assert response.json()["detail"].startswith("request body: ")

"""`herald serve` as it starts: what it does before the first request."""

from __future__ import annotations

import gc

import pytest
import uvicorn
from typer.testing import CliRunner

from herald.cli.main import app
from tests.conftest import TEST_SECRET


def test_serve_hides_the_objects_of_start_up_from_the_collector_before_serving(
    database_url, monkeypatch
):
    """The app, its routes and every module loaded are frozen out of the collector's full
    passes (they live as long as the process), so those passes stay short under load."""
    monkeypatch.setenv("HERALD_DATABASE_URL", database_url)
    monkeypatch.setenv("HERALD_SECRET_KEY", TEST_SECRET)
    served: dict[str, object] = {}

    def serve_nothing(asgi_app: object, **options: object) -> None:
        served["app"] = asgi_app
        served["frozen"] = gc.get_freeze_count()
        # the collector's generations no longer hold it: it is frozen
        served["app_collected"] = any(obj is asgi_app for obj in gc.get_objects())

    monkeypatch.setattr(uvicorn, "run", serve_nothing)
    assert gc.get_freeze_count() == 0
    try:
        result = CliRunner().invoke(app, ["serve", "--no-worker", "--port", "1"])
    finally:
        gc.unfreeze()
    assert result.exit_code == 0, result.output
    assert "app" in served
    assert served["frozen"] > 10_000  # the modules' functions and classes alone
    assert served["app_collected"] is False


@pytest.fixture(autouse=True)
def _no_freeze_left_behind():
    yield
    assert gc.get_freeze_count() == 0

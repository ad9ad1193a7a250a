"""Fixtures: the app built on a temporary database with the scheduler off, and its test client."""
from __future__ import annotations

import pytest

from server_helpers import build_app, services_of, shutdown_app


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts the real gunicorn server (seconds each)")


@pytest.fixture
def make_app(tmp_path):
    """Build apps on the same temporary database (e.g. to check what survives a rebuild)."""
    apps = []

    def make(**overrides):
        app = build_app(tmp_path, **overrides)
        apps.append(app)
        return app

    yield make
    for app in apps:
        shutdown_app(app)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def services(app):
    return services_of(app)

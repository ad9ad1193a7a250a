"""Fixtures of the pipeline tests: the EV charging schema, loaded once."""
from __future__ import annotations

import pytest

from server.pipeline.schema import load_schema


@pytest.fixture(scope="session")
def ev_schema():
    return load_schema("ev_charging")

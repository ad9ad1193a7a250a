"""Shared by the pipeline tests (imported by name: this folder is on sys.path): the EV schema
fixture and small CSV files.  Not a conftest.py: tests/server and tests/web have one each, and
pytest's doctest collection imports every conftest under the one module name."""
from __future__ import annotations

import pytest

from server.pipeline.schema import load_schema

HEADER = "session_id,user_id,charger_id,start_time,duration,energy,payment,ip_address"


@pytest.fixture(scope="session")
def ev_schema():
    return load_schema("ev_charging")


def csv_bytes(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()

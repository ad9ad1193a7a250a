"""Fixtures: small labelled corpora written once per session in the shared corpora's and NAB's formats."""
from __future__ import annotations

from pathlib import Path

import pytest

from evaluation_helpers import write_corpora, write_nab


@pytest.fixture(scope="session")
def tiny_corpora(tmp_path_factory) -> Path:
    return write_corpora(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="session")
def tiny_nab(tmp_path_factory) -> Path:
    return write_nab(tmp_path_factory.mktemp("nab"))

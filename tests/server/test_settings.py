"""Settings: declared once, parsed and checked at start-up, all documented."""
from __future__ import annotations

import re

import pytest

from server import create_app
from server.settings import (REPO_ROOT, SETTINGS, SETTINGS_BY_NAME, SettingsError, load_settings,
                             markdown_table)

SERVER_DIR = REPO_ROOT / "server"
#: Config keys that belong to Flask or its extensions, not to our settings.
FOREIGN_KEYS = {"SOCK_SERVER_OPTIONS"}


def test_defaults_load_and_match_declared_defaults():
    values = load_settings(environ={})
    assert values == {s.name: s.parse(s.default, s.name) for s in SETTINGS}
    assert values["TICK_INTERVAL"] == 2.0 and values["SYNCHRONOUS"] == "FULL"


def test_environment_overrides_default_and_test_config_overrides_environment():
    environ = {"ANOMALY_TICK_INTERVAL": "0.5", "ANOMALY_SCHEDULER": "off", "ANOMALY_SEED": "7"}
    values = load_settings(environ=environ)
    assert (values["TICK_INTERVAL"], values["SCHEDULER"], values["SEED"]) == (0.5, False, 7)
    values = load_settings({"TICK_INTERVAL": 0.25}, environ=environ)
    assert values["TICK_INTERVAL"] == 0.25


@pytest.mark.parametrize("variable, raw, expected", [
    ("ANOMALY_TICK_INTERVAL", "0.05", ">= 0.1"),
    ("ANOMALY_TICK_INTERVAL", "fast", "expected a number"),
    ("ANOMALY_TICK_INTERVAL", "nan", "finite"),
    ("ANOMALY_SYNCHRONOUS", "OFF", "one of FULL, NORMAL"),
    ("ANOMALY_SCHEDULER", "maybe", "expected a boolean"),
    ("ANOMALY_RETENTION_POINTS", "5", ">= 10"),
    ("ANOMALY_MAX_BATCH_POINTS", "1.5", "expected an integer"),
])
def test_bad_environment_values_fail_with_the_variable_named(variable, raw, expected):
    with pytest.raises(SettingsError) as info:
        load_settings(environ={variable: raw})
    assert variable in str(info.value) and expected in str(info.value)


def test_unknown_anomaly_variables_are_reported():
    from server.settings import unknown_variables

    environ = {"ANOMALY_TICK_INTERVALL": "1", "ANOMALY_SEED": "3", "PORT": "80",
               "ANOMALY_WORKER_CONNECTIONS": "10"}
    assert unknown_variables(environ) == ["ANOMALY_TICK_INTERVALL"]


def test_unknown_test_config_key_is_refused():
    with pytest.raises(SettingsError, match="unknown setting"):
        load_settings({"TICK_INTERVALL": 1.0}, environ={})


def test_create_app_refuses_bad_settings(tmp_path):
    with pytest.raises(SettingsError, match="TICK_INTERVAL"):
        create_app({"DATABASE": str(tmp_path / "x.db"), "TICK_INTERVAL": 0, "SCHEDULER": False})
    with pytest.raises(SettingsError, match="ANOMALY_DETECTORS"):
        create_app({"DATABASE": str(tmp_path / "x.db"), "LOG_DIR": str(tmp_path),
                    "DETECTORS": "zscore,nosuch", "SCHEDULER": False})


def test_every_setting_is_documented():
    table = markdown_table()
    for setting in SETTINGS:
        assert setting.help.strip(), f"{setting.name} has no help text"
        assert f"`{setting.env_var}`" in table
        assert setting.parse(setting.default, setting.name) is not None


def test_every_setting_the_server_reads_is_declared():
    used = set()
    for path in SERVER_DIR.glob("*.py"):
        used |= set(re.findall(r"""(?:settings|config)\[["']([A-Z_]+)["']\]""", path.read_text()))
    assert used, "the scan found no setting at all: the pattern is stale"
    undeclared = used - set(SETTINGS_BY_NAME) - FOREIGN_KEYS
    assert not undeclared, f"read but not declared in server/settings.py: {sorted(undeclared)}"


def test_every_variable_the_gunicorn_configuration_reads_is_documented():
    text = (SERVER_DIR / "gunicorn_conf.py").read_text()
    read = set(re.findall(r"""os\.environ\.get\(["']([A-Z_]+)["']""", text))
    assert {"PORT", "HOST"} <= read
    table = markdown_table()
    assert all(f"`{name}`" in table for name in read), sorted(read)


def test_readme_settings_table_lists_every_setting():
    readme = REPO_ROOT / "README.md"
    text = readme.read_text() if readme.exists() else ""
    if "ANOMALY_" not in text:
        pytest.skip("README.md has no settings table yet (python -m server.settings prints it)")
    missing = [s.env_var for s in SETTINGS if s.env_var not in text]
    assert not missing, f"README.md does not document {missing}"

"""A domain of one's own, declared as data: ANOMALY_SCHEMAS names bundled schemas or .toml files.

The next domains (electricity per consumer, e-commerce invoices, card transactions) come in as
schema files beside EV charging, with no code: this serves one written here, an electricity
schema whose consumers' readings far below their own usual are ``theft``, and checks that upload,
anomalies, flags and the schema list work for it as for EV charging.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from server.pipeline.ingest import check_schema_names
from server.settings import SettingsError
from server_helpers import services_of

ELECTRICITY = '''
name = "electricity"
description = "Smart-meter readings per consumer"
id = "reading_id"
timestamp = "read_at"
entities = ["consumer_id"]

[fields.reading_id]
type = "string"
[fields.consumer_id]
type = "string"
aliases = ["account"]
[fields.read_at]
type = "datetime"
[fields.kwh]
type = "number"
unit = "kWh"
minimum = 0
[fields.voltage]
type = "number"
unit = "V"

[derived.hour_of_day]
hour_of = "read_at"

[baseline]
threshold = 4.5
memory = 200
warmup = 5
idle = "30d"
max_entities = 100000

[[baseline.features]]
entity = "consumer_id"
feature = "kwh"
transform = "log"
min_scale = 0.1
sides = "low"
low = "theft"

[[rules]]
type = "tampering"
kind = "condition"
severity = "critical"
when = [["voltage", "<", 150], ["kwh", ">", 0]]
reason = "{kwh:.1f} kWh metered at {voltage:.0f} V"

[alerts.subjects]
tampering = "consumer_id"
'''


def _readings() -> bytes:
    """Five consumers' hourly readings for two days, then one reading far below the usual (theft)
    and one at an impossible voltage (tampering)."""
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    lines = ["reading_id,account,read_at,kwh,voltage"]
    for h in range(48):
        at = (start + timedelta(hours=h)).isoformat()
        for c in range(5):
            kwh = 1.0 + 0.1 * c + 0.05 * ((h * 7 + c) % 5)
            lines.append(f"r{h}-{c},C{c},{at},{kwh:.3f},{230 + (h + c) % 4}")
    at = (start + timedelta(hours=48)).isoformat()
    lines.append(f"theft,C2,{at},0.02,231")
    lines.append(f"tamper,C3,{at},1.3,90")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def schema_file(tmp_path):
    path = tmp_path / "electricity.toml"
    path.write_text(ELECTRICITY, encoding="utf-8")
    return path


def test_a_schema_file_is_served_beside_the_bundled_ones(make_app, schema_file):
    app = make_app(SCHEMAS=f"ev_charging, {schema_file}")
    client = app.test_client()
    names = [s["name"] for s in client.get("/api/schemas").get_json()["schemas"]]
    assert names == ["ev_charging", "electricity"]

    answer = client.post("/api/upload?schema=electricity", data=_readings(), content_type="text/csv")
    assert answer.status_code == 200, answer.get_json()
    summary = answer.get_json()
    assert summary["events"] == 242 and summary["types"] == {"theft": 1, "tampering": 1}, summary

    listed = client.get("/api/anomalies?schema=electricity").get_json()["anomalies"]
    by_id = {a["event_id"]: a for a in listed}
    assert set(by_id) == {"theft", "tamper"}
    assert by_id["theft"]["types"] == ["theft"] and by_id["theft"]["entities"] == {"consumer_id": "C2"}
    assert by_id["tamper"]["severity"] == "critical" and "90 V" in by_id["tamper"]["explanation"]

    flagged = client.post("/api/flags", json={"schema": "electricity", "entity": "consumer_id", "id": "C2"})
    assert flagged.status_code == 201, flagged.get_json()
    assert client.get("/api/events/summary?schema=electricity").get_json()["flagged"][0]["entity_id"] == "C2"
    later = "reading_id,consumer_id,read_at,kwh,voltage\nlater,C2,2026-11-03T02:00:00+00:00,1.3,230\n"
    assert client.post("/api/upload?schema=electricity", data=later.encode(), content_type="text/csv").status_code == 200
    newest = client.get("/api/events?schema=electricity&consumer_id=C2&limit=1").get_json()["events"][0]
    assert newest["event_id"] == "later" and newest["flagged"] is True and newest["fields"]["kwh"] == 1.3
    # EV charging is untouched by the other schema's events.
    assert client.get("/api/events/summary?schema=ev_charging").get_json()["events"] == 0
    assert services_of(app).ingest.schema_files["electricity"] == schema_file


def test_a_wrong_schemas_setting_names_the_entry(tmp_path, schema_file):
    with pytest.raises(SettingsError, match="unknown schema 'electricty'.*known: \\['ev_charging'\\]"):
        check_schema_names("ev_charging,electricty")
    with pytest.raises(SettingsError, match="missing.toml"):
        check_schema_names(str(tmp_path / "missing.toml"))
    broken = tmp_path / "broken.toml"
    broken.write_text("name = ", encoding="utf-8")
    with pytest.raises(SettingsError, match="broken.toml"):
        check_schema_names(str(broken))
    nameless = tmp_path / "nameless.toml"
    nameless.write_text('id = "x"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match="declares no `name`"):
        check_schema_names(str(nameless))
    wrong = tmp_path / "wrong.toml"
    wrong.write_text(ELECTRICITY.replace('sides = "low"', 'sides = "under"'), encoding="utf-8")
    with pytest.raises(SettingsError, match="wrong.toml: baseline.features.*sides"):
        check_schema_names(str(wrong))
    twin = tmp_path / "twin.toml"
    twin.write_text(ELECTRICITY, encoding="utf-8")
    with pytest.raises(SettingsError, match="two files declare the schema 'electricity'"):
        check_schema_names(f"{schema_file},{twin}")
    assert check_schema_names(f" ev_charging ,{schema_file}") == {
        "ev_charging": check_schema_names("ev_charging")["ev_charging"], "electricity": schema_file}

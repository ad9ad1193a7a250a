"""/api/openapi.json stays true: every route is described, and real responses fit the schemas."""
from __future__ import annotations

import re

import jsonschema
import pytest

from server.openapi import spec
from server_helpers import run_ticks

IGNORED_METHODS = {"HEAD", "OPTIONS"}


def flask_routes(app) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        routes.setdefault(path, set()).update(m for m in rule.methods if m not in IGNORED_METHODS)
    return routes


def test_every_route_is_described_and_every_description_is_a_route(app, client):
    document = client.get("/api/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    described = {path: {m.upper() for m in ops} for path, ops in document["paths"].items()}
    assert described == flask_routes(app)


def test_every_schema_is_valid_and_every_ref_resolves():
    document = spec()
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema)
    refs = re.findall(r"#/components/(\w+)/(\w+)", str(document))
    assert refs
    for kind, name in refs:
        assert name in document["components"][kind], f"dangling $ref {kind}/{name}"


def response_validator(document: dict, path: str, method: str, status: int):
    response = document["paths"][path][method]["responses"][str(status)]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


CALLS = [
    # (spec path, method, url, json body, expected status)
    ("/health", "get", "/health", None, 200),
    ("/api/status", "get", "/api/status", None, 200),
    ("/api/stats", "get", "/api/stats", None, 200),
    ("/api/data/{source}", "get", "/api/data/iot_sensors?limit=5", None, 200),
    ("/api/data/{source}", "get", "/api/data/nosuch", None, 404),
    ("/api/data/{source}", "get", "/api/data/cpu_usage?limit=x", None, 400),
    ("/api/anomalies", "get", "/api/anomalies", None, 200),
    ("/api/alerts", "get", "/api/alerts", None, 200),
    ("/api/submit", "post", "/api/submit", {"source": "doc", "value": 1.0}, 200),
    ("/api/submit", "post", "/api/submit", {"points": [{"source": "doc", "value": 2.0},
                                                       {"source": "doc2", "values": {"a": 1}}]}, 200),
    ("/api/submit", "post", "/api/submit", {"source": "doc"}, 400),
    ("/api/configure", "get", "/api/configure", None, 200),
    ("/api/configure", "get", "/api/configure?source=cpu_usage", None, 200),
    ("/api/configure", "post", "/api/configure", {"source": "cpu_usage", "threshold": 0.99}, 200),
    ("/api/configure", "post", "/api/configure", {"source": "nosuch", "threshold": 0.99}, 404),
    ("/vendor/chart.umd.js", "get", "/vendor/chart.umd.js", None, None),
    ("/api/incidents", "get", "/api/incidents?state=firing,pending", None, 200),
    ("/api/incidents", "get", "/api/incidents?format=pdf", None, 400),
    ("/api/incidents/{alert_id}", "get", "/api/incidents/424242", None, 404),
    ("/api/incidents/{alert_id}/acknowledge", "post", "/api/incidents/424242/acknowledge", {"by": "x"}, 404),
    ("/api/silences", "post", "/api/silences", {"matchers": {"stream": "cpu_usage"}, "duration": 60}, 201),
    ("/api/silences", "get", "/api/silences", None, 200),
    ("/api/audit", "get", "/api/audit", None, 200),
    ("/api/receivers", "get", "/api/receivers", None, 200),
]


@pytest.mark.parametrize("path, method, url, body, status", CALLS)
def test_real_responses_validate_against_the_spec(app, client, path, method, url, body, status):
    run_ticks(app, 2)
    client.post("/api/submit", json={"points": [{"source": "spiky", "value": float(i % 3)} for i in range(80)]
                                     + [{"source": "spiky", "value": 1e9}]})
    response = client.open(url, method=method.upper(), json=body)
    if status is None:  # JavaScript once `npm install` has run, else the JSON 404
        status = response.status_code
        if status == 200:
            assert response.mimetype == "text/javascript"
            return
    assert response.status_code == status
    document = spec()
    response_validator(document, path, method, status).validate(response.get_json())


def test_anomalies_in_responses_validate(client):
    client.post("/api/submit", json={"points": [{"source": "spiky", "value": float(i % 3)} for i in range(80)]
                                     + [{"source": "spiky", "value": 1e9}]})
    body = client.get("/api/anomalies").get_json()
    assert body["anomalies"], "the spike should have been flagged"
    response_validator(spec(), "/api/anomalies", "get", 200).validate(body)


@pytest.mark.parametrize("status, call", [
    (405, lambda c: c.delete("/api/status")),
    (413, lambda c: c.post("/api/submit", data=b"x" * 2_000_000, content_type="application/json")),
])
def test_error_responses_have_the_documented_shape(client, status, call):
    response = call(client)
    assert response.status_code == status
    jsonschema.validate(response.get_json(), spec()["components"]["schemas"]["Error"])



def test_who_acknowledges_follows_the_name_rule_of_every_typed_name(client):
    """``by`` of an acknowledgement is checked as every typed name is (validation.check_name, the
    spec's NAME_PATTERN), so a request the spec calls valid is never refused as empty
    (schemathesis sent a lone \\x1d, white space to Python's strip and not to ECMA's \\s)."""
    import re

    from server.openapi import spec
    from server.validation import NAME_PATTERN

    by = spec()["components"]["schemas"]["AcknowledgeRequest"]["properties"]["by"]
    assert by["pattern"] == NAME_PATTERN and by["maxLength"] == 64
    assert not re.search(by["pattern"], "\x1d") and re.search(by["pattern"], " ops ")
    answer = client.post("/api/anomalies/1/acknowledge", json={"by": "\x1d"})
    assert answer.status_code == 400 and "by" in answer.get_json()["error"]

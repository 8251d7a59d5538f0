"""The OpenAPI document of POST /api/hl7, exercised by schemathesis against a live server:
whatever body it generates, the answer is one the document lists, an HL7 ACK, never a 500."""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from infusion_tracker.devices import services
from infusion_tracker.extensions import db


@schemathesis.serializer("application/hl7-v2")
def _hl7_body(ctx, value):
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


@schemathesis.deserializer("application/hl7-v2")
def _hl7_answer(ctx, response):
    return response.content.decode(response.encoding or "utf-8")


@pytest.fixture
def device_token(app):
    device, token = services.register_device("Room 1 monitor", "Room 1", None)
    db.session.commit()
    return token


@pytest.fixture
def hl7_schema(live_server, device_token):
    return schemathesis.openapi.from_url(f"{live_server}/api/hl7/openapi.json")


def test_api_hl7_conforms_to_its_openapi_document(hl7_schema, device_token):
    # Hypothesis driven directly: schemathesis' pytest plugin does not run on this pytest.
    operation = hl7_schema["/api/hl7"]["POST"]
    answered = set()

    @given(case=operation.as_strategy())
    @settings(
        max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case):
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {device_token}"},
            # JSON Schema cannot say what a valid ORU^R01 is: schema-valid text is rightly
            # answered AR. Every other check (status codes, content type, no 500s) applies.
            excluded_checks=[schemathesis.checks.positive_data_acceptance],
        )
        assert response.status_code in (200, 400, 413, 415, 422)
        assert response.text.startswith("MSH|")
        answered.add(response.status_code)

    check()
    assert 400 in answered  # random bodies are rejected as unreadable, not a 500


def test_the_document_is_public_and_names_the_server(client):
    document = client.get("/api/hl7/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]["/api/hl7"]["post"]["responses"]) >= {"200", "401", "422"}
    assert document["servers"][0]["url"].startswith("http://")

"""Liveness and readiness probes."""

from flask.testing import FlaskClient


def test_live_answers_without_checking_dependencies(client: FlaskClient) -> None:
    response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_ready_reports_database_latency(client: FlaskClient) -> None:
    response = client.get("/health/ready")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["latency_ms"] >= 0

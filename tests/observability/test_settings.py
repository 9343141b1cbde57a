"""Observability settings fail fast, with one line naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from tests.conftest import make_test_app


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"WORKER_METRICS_PORT": "9808"}, "WORKER_METRICS_PORT"),
        ({"METRICS_ALLOWED_IPS": "127.0.0.1,not-a-network"}, "METRICS_ALLOWED_IPS"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
        ({"SENTRY_TRACES_SAMPLE_RATE": "1.5"}, "SENTRY_TRACES_SAMPLE_RATE"),
    ],
)
def test_bad_values_are_refused(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(APP_ENV="testing", **overrides)


def test_worker_metrics_with_a_multiprocess_folder_is_fine(tmp_path: Path) -> None:
    settings = load_settings(
        APP_ENV="testing", WORKER_METRICS_PORT="9808", PROMETHEUS_MULTIPROC_DIR=str(tmp_path)
    )
    assert settings.WORKER_METRICS_PORT == 9808


def test_a_multiprocess_folder_the_library_did_not_see_is_refused(
    database_url: str, instance_path: Path, tmp_path: Path
) -> None:
    # This test process imported prometheus_client without PROMETHEUS_MULTIPROC_DIR (as happens
    # when the folder is only in .env): metrics would silently be per process.
    with pytest.raises(ConfigError, match="PROMETHEUS_MULTIPROC_DIR: must be in the process"):
        make_test_app(database_url, instance_path, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))


def test_a_missing_multiprocess_folder_is_refused(database_url: str, instance_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        make_test_app(database_url, instance_path, PROMETHEUS_MULTIPROC_DIR="/nonexistent/x")

"""deploy/k8s: rendered like kustomize, valid against the Kubernetes schemas, the project's rules.

The schemas ship with kubernetes-validate (offline); every manifest is checked in strict mode
(unknown fields are errors) for the oldest and the newest Kubernetes version we target.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from flask import Flask

from app.config import PROJECT_ROOT, ConfigError, Settings, load_settings
from tests.deploy.kustomize import Resource, containers, pod_spec, render

K8S = PROJECT_ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
GUNICORN_CMD = ["gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"]
APP_WORKLOADS = {
    ("Deployment", "api"),
    ("Deployment", "worker"),
    ("Deployment", "beat"),
    ("Job", "migrate"),
}
# Read by gunicorn.conf.py, not by app/config.py.
PROCESS_VARIABLES = frozenset({"WEB_CONCURRENCY", "WEB_THREADS"})
GUNICORN_CONF = (PROJECT_ROOT / "deploy" / "gunicorn.conf.py").read_text()


def rendered(directory: Path) -> list[Resource]:
    """The resources of a kustomization."""
    return render(directory)


def by_key(resources: list[Resource]) -> dict[tuple[str, str], Resource]:
    """Resources by (kind, name)."""
    return {(resource["kind"], resource["metadata"]["name"]): resource for resource in resources}


@pytest.fixture(scope="module")
def production() -> dict[tuple[str, str], Resource]:
    """The production overlay, rendered."""
    return by_key(rendered(PRODUCTION))


def manifest_ids() -> list[str]:
    """Test ids: overlay/kind/name."""
    return [
        f"{directory.name}/{resource['kind']}/{resource['metadata']['name']}"
        for directory in (BASE, PRODUCTION)
        for resource in rendered(directory)
    ]


@pytest.mark.parametrize(
    "resource",
    [resource for directory in (BASE, PRODUCTION) for resource in rendered(directory)],
    ids=manifest_ids(),
)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schema(
    resource: Resource, version: str
) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


def test_the_schema_check_catches_a_wrong_field() -> None:
    """The gate is real: a misspelt field and a wrong type are both errors."""
    deployment = by_key(rendered(BASE))["Deployment", "api"]
    misspelt = json.loads(json.dumps(deployment))
    misspelt["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSIONS[-1], strict=True)
    wrong_type = json.loads(json.dumps(deployment))
    wrong_type["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_renderer_agrees_with_kubectl_kustomize(directory: Path) -> None:
    output = subprocess.run(
        ["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=True
    ).stdout
    theirs = by_key([doc for doc in yaml.safe_load_all(output) if doc])
    assert by_key(rendered(directory)) == theirs


def test_production_sets_the_namespace_and_a_pinned_image(
    production: dict[tuple[str, str], Resource],
) -> None:
    namespace = production["Namespace", "flask-service-template"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for (kind, _), resource in production.items():
        if kind != "Namespace":
            assert resource["metadata"]["namespace"] == "flask-service-template"
    images = {
        container["image"] for key in APP_WORKLOADS for container in containers(production[key])
    }
    assert images == {"registry.example.com/flask-service-template:1.0.0"}


@pytest.mark.parametrize("directory", [BASE, PRODUCTION], ids=["base", "production"])
def test_every_role_runs_the_same_image_by_command(directory: Path) -> None:
    resources = by_key(rendered(directory))
    images = {c["image"] for key in APP_WORKLOADS for c in containers(resources[key])}
    assert len(images) == 1
    dockerfile_cmd = re.search(r"^CMD (.+)$", (PROJECT_ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_cmd
    assert json.loads(dockerfile_cmd.group(1)) == GUNICORN_CMD
    (api,) = containers(resources["Deployment", "api"])
    assert api["command"] == GUNICORN_CMD
    (worker,) = containers(resources["Deployment", "worker"])
    assert worker["command"][:4] == ["celery", "-A", "celery_worker", "worker"]
    (beat,) = containers(resources["Deployment", "beat"])
    assert beat["command"][:4] == ["celery", "-A", "celery_worker", "beat"]
    (migrate,) = containers(resources["Job", "migrate"])
    assert migrate["command"] == ["flask", "db", "upgrade"]


def test_beat_is_exactly_one_and_never_two_at_once(
    production: dict[tuple[str, str], Resource],
) -> None:
    beat = production["Deployment", "beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    autoscaled = {
        hpa["spec"]["scaleTargetRef"]["name"]
        for (kind, _), hpa in production.items()
        if kind == "HorizontalPodAutoscaler"
    }
    assert autoscaled == {"api", "worker"}
    beats = [
        key
        for key in production
        if any("beat" in c.get("command", []) for c in containers(production[key]))
    ]
    assert beats == [("Deployment", "beat")]


def test_the_api_runs_at_least_two_replicas_and_keeps_them_through_disruptions(
    production: dict[tuple[str, str], Resource],
) -> None:
    assert production["Deployment", "api"]["spec"]["replicas"] >= 2
    assert production["HorizontalPodAutoscaler", "api"]["spec"]["minReplicas"] >= 2
    pdb = production["PodDisruptionBudget", "api"]
    api_labels = production["Deployment", "api"]["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= api_labels.items()
    assert pdb["spec"]["minAvailable"] >= 1


@pytest.mark.parametrize("key", sorted(APP_WORKLOADS))
def test_every_container_is_non_root_read_only_with_resources(
    production: dict[tuple[str, str], Resource], key: tuple[str, str]
) -> None:
    spec = pod_spec(production[key])
    assert spec is not None
    pod_security = spec["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == 10001  # the image's USER
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for container in containers(production[key]):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["runAsNonRoot"] is True
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}
        # Read-only root: /tmp (the app user's $HOME) and the metrics folder are emptyDirs.
        mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        env = {item["name"]: item.get("value") for item in container.get("env", [])}
        if "PROMETHEUS_MULTIPROC_DIR" in env:
            assert "emptyDir" in volumes[mounts[env["PROMETHEUS_MULTIPROC_DIR"]]]


def test_api_probes_point_at_the_health_endpoints(
    production: dict[tuple[str, str], Resource], app: Flask
) -> None:
    (api,) = containers(production["Deployment", "api"])
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert ports["http"] == 8000  # gunicorn's default bind ($PORT)
    paths = {
        probe: api[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    # Liveness never depends on the database (an outage must not restart every pod); readiness
    # does, and takes the pod out of the Service instead.
    assert paths == {
        "startupProbe": "/health/live",
        "livenessProbe": "/health/live",
        "readinessProbe": "/health/ready",
    }
    adapter = app.url_map.bind("localhost")
    for path in set(paths.values()):
        endpoint, _ = adapter.match(path)
        assert endpoint.startswith("health.")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert api[probe]["httpGet"]["port"] in ports


def test_shutdown_fits_inside_the_grace_period(
    production: dict[tuple[str, str], Resource],
) -> None:
    spec = pod_spec(production["Deployment", "api"])
    assert spec is not None
    (api,) = spec["containers"]
    command = api["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pause = int(command[1])
    graceful = re.search(r'_int\("GUNICORN_GRACEFUL_TIMEOUT", (\d+)\)', GUNICORN_CONF)
    assert graceful
    assert 0 < pause < spec["terminationGracePeriodSeconds"]
    assert pause + int(graceful.group(1)) < spec["terminationGracePeriodSeconds"]


def test_the_migration_job_is_bounded_and_cleaned_up(
    production: dict[tuple[str, str], Resource],
) -> None:
    job = production["Job", "migrate"]["spec"]
    assert 1 <= job["backoffLimit"] <= 6
    assert job["ttlSecondsAfterFinished"] > 0
    assert job["activeDeadlineSeconds"] > 0
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_service_ingress_and_selectors_connect(
    production: dict[tuple[str, str], Resource],
) -> None:
    service = production["Service", "api"]
    pods = production["Deployment", "api"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()
    (api,) = containers(production["Deployment", "api"])
    port_names = {port["name"] for port in api["ports"]}
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= port_names
    ingress = production["Ingress", "api"]
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert ("Service", backend["name"]) in production
            assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    body_size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert body_size == "1m"
    assert Settings.model_fields["MAX_CONTENT_LENGTH"].default == 1024 * 1024
    for (kind, _), resource in production.items():
        if kind == "Deployment":
            selector = resource["spec"]["selector"]["matchLabels"]
            assert selector.items() <= resource["spec"]["template"]["metadata"]["labels"].items()


def configuration(production: dict[tuple[str, str], Resource]) -> dict[str, str]:
    """The ConfigMap's and the example Secret's values together."""
    config = production["ConfigMap", "flask-service-template"]["data"]
    secret = production["Secret", "flask-service-template"]["stringData"]
    assert not set(config) & set(secret), "a setting in both the ConfigMap and the Secret"
    return {**config, **secret}


def test_every_variable_names_a_real_setting(production: dict[tuple[str, str], Resource]) -> None:
    names = set(configuration(production))
    for key in APP_WORKLOADS:
        for container in containers(production[key]):
            names |= {item["name"] for item in container.get("env", [])}
            refs = {next(iter(source.values()))["name"] for source in container["envFrom"]}
            assert refs == {"flask-service-template"}
    assert names - set(Settings.model_fields) <= PROCESS_VARIABLES, "a misspelt setting?"


def load_production(values: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings built from exactly ``values`` (the machine's variables removed)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_the_example_secret_can_never_start_production(
    production: dict[tuple[str, str], Resource], monkeypatch: pytest.MonkeyPatch
) -> None:
    values = configuration(production)
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        load_production(values, monkeypatch)
    # With a real key, the rest of the configuration is what production accepts.
    settings = load_production(values | {"SECRET_KEY": "k" * 48}, monkeypatch)
    assert settings.APP_ENV == "production"
    assert settings.PROXY_FIX_X_FOR == 1
    assert settings.PUBLIC_BASE_URL.startswith("https://")

"""A small kustomize renderer for the subset deploy/k8s uses, so ``make test`` needs no binary.

Supported: ``resources`` (files, and directories holding a kustomization.yaml), ``namespace``,
``images``, ``replicas`` and ``patches`` with JSON 6902 operations (add, replace, remove) on a
``target`` of kind and name. Any other field is refused rather than ignored, so an overlay can
never use a feature this renderer would silently skip. Where ``kubectl`` is installed, the tests
also compare this output with ``kubectl kustomize``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
)
# Kinds the namespace transformer leaves alone (cluster-scoped).
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "IngressClass"})
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"})


class UnsupportedKustomization(ValueError):
    """The kustomization uses something this renderer does not implement."""


def load_documents(path: Path) -> list[Resource]:
    """Every non-empty YAML document of ``path``."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render(directory: Path) -> list[Resource]:
    """The resources ``kubectl kustomize directory`` would output (in resource order)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedKustomization(f"{directory}: unsupported fields {sorted(unknown)}")
    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path) if path.is_dir() else load_documents(path)
    for patch in kustomization.get("patches", []):
        _apply_patch(resources, patch)
    for image in kustomization.get("images", []):
        _set_image(resources, image)
    for replicas in kustomization.get("replicas", []):
        _set_replicas(resources, replicas)
    namespace = kustomization.get("namespace")
    if namespace:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = namespace
    return resources


def _matches(resource: Resource, target: dict[str, Any]) -> bool:
    unknown = set(target) - {"kind", "name"}
    if unknown:
        raise UnsupportedKustomization(f"patch target fields {sorted(unknown)}")
    return resource["kind"] == target.get("kind", resource["kind"]) and resource["metadata"][
        "name"
    ] == target.get("name", resource["metadata"]["name"])


def _apply_patch(resources: list[Resource], patch: dict[str, Any]) -> None:
    if set(patch) != {"target", "patch"}:
        raise UnsupportedKustomization(f"only inline JSON 6902 patches: {sorted(patch)}")
    operations = yaml.safe_load(patch["patch"])
    targets = [resource for resource in resources if _matches(resource, patch["target"])]
    if not targets:
        raise UnsupportedKustomization(f"patch target {patch['target']} matches nothing")
    for resource in targets:
        for operation in operations:
            _apply_operation(resource, operation)


def _apply_operation(resource: Resource, operation: dict[str, Any]) -> None:
    *parents, last = [
        part.replace("~1", "/").replace("~0", "~") for part in operation["path"].split("/")[1:]
    ]
    node: Any = resource
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if op == "remove":
        del node[int(last) if isinstance(node, list) else last]
    elif op == "replace":
        key = int(last) if isinstance(node, list) else last
        node[key]
        node[key] = copy.deepcopy(operation["value"])
    elif op == "add":
        if isinstance(node, list):
            node.insert(len(node) if last == "-" else int(last), copy.deepcopy(operation["value"]))
        else:
            node[last] = copy.deepcopy(operation["value"])
    else:
        raise UnsupportedKustomization(f"JSON 6902 op {op!r}")


def pod_spec(resource: Resource) -> dict[str, Any] | None:
    """The pod spec of a workload, or None for other kinds."""
    if resource["kind"] not in WORKLOAD_KINDS:
        return None
    spec = resource["spec"]
    if resource["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def containers(resource: Resource) -> list[dict[str, Any]]:
    """Every container and init container of a workload (empty for other kinds)."""
    spec = pod_spec(resource)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec["containers"]]


def _set_image(resources: list[Resource], image: dict[str, Any]) -> None:
    unknown = set(image) - {"name", "newName", "newTag"}
    if unknown:
        raise UnsupportedKustomization(f"image fields {sorted(unknown)}")
    for resource in resources:
        for container in containers(resource):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                new_tag = image.get("newTag", tag)
                container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")


def _set_replicas(resources: list[Resource], replicas: dict[str, Any]) -> None:
    matched = [
        resource
        for resource in resources
        if resource["kind"] in {"Deployment", "StatefulSet"}
        and resource["metadata"]["name"] == replicas["name"]
    ]
    if not matched:
        raise UnsupportedKustomization(f"replicas for {replicas['name']!r} match nothing")
    for resource in matched:
        resource["spec"]["replicas"] = replicas["count"]

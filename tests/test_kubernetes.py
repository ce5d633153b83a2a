"""Kubernetes manifests and the Helm chart: they render with the real tools, every object
validates strictly against the Kubernetes API schemas, and the two do not drift apart.

helm and kubectl (with kustomize) come from tools/install-tools.sh (`make test` runs it).
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).parent.parent
TOOLS = ROOT / ".tools" / "bin"
KUSTOMIZE = ROOT / "deploy" / "kubernetes"
CHART = ROOT / "deploy" / "helm" / "heritage-audio"
OVERLAYS = sorted(p.name for p in (KUSTOMIZE / "overlays").iterdir())
# kubectl's own version, and the newest the validator knows.
VERSIONS = ("1.35.0", kubernetes_validate.latest_version())
# Labels only Helm adds (release bookkeeping); everything else must be equal.
HELM_ONLY_LABELS = {"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version",
                    "app.kubernetes.io/instance"}  # fmt: skip


def _tool(name: str) -> str:
    path = TOOLS / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `bash tools/install-tools.sh` (make test does)")
    return str(path)


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def kustomize(path: Path) -> list[dict[str, Any]]:
    return _objects(_run(_tool("kubectl"), "kustomize", str(path)))


def helm_template(*values: str, release: str = "heritage-audio") -> list[dict[str, Any]]:
    sets = [arg for value in values for arg in ("--set", value)]
    return _objects(_run(_tool("helm"), "template", release, str(CHART), *sets))


KEDA_SCHEMA = ROOT / "tests" / "data" / "keda-scaledobject.schema.json"


def _validate_keda(obj: dict[str, Any]) -> None:
    """A KEDA ScaledObject (a CRD, unknown to kubernetes-validate): our schema of it, and
    its HPA behavior checked by kubernetes-validate inside the HPA that KEDA will make."""
    jsonschema.validate(obj, json.loads(KEDA_SCHEMA.read_text()))
    behavior = obj["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {})
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": obj["metadata"]["name"]},
        "spec": {"scaleTargetRef": obj["spec"]["scaleTargetRef"], "maxReplicas": 1,
                 **({"behavior": behavior["behavior"]} if "behavior" in behavior else {})},
    }  # fmt: skip
    for version in VERSIONS:
        kubernetes_validate.validate(hpa, version, strict=True)


def _validate_all(objects: list[dict[str, Any]]) -> None:
    assert objects
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            _validate_keda(obj)
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_helm_lint_strict_passes() -> None:
    _run(_tool("helm"), "lint", "--strict", str(CHART))


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_every_kustomize_object_validates_strictly(overlay: str) -> None:
    path = KUSTOMIZE / "base" if overlay == "base" else KUSTOMIZE / "overlays" / overlay
    _validate_all(kustomize(path))


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("ingress.enabled=false", "aggregate.enabled=false", "networkPolicy.enabled=false",
         "redis.host=", "kafka.bootstrapServers=", "persistence.storageClass=cephfs"),
        ("ingress.tls[0].secretName=tls", "ingress.tls[0].hosts[0]=heritage-audio.example.org",
         "image.tag=0.1.0", "api.replicas=4", "worker.autoscaling.maxReplicas=30"),
        ("worker.autoscaling.queueScaler.enabled=true", "worker.autoscaling.maxReplicas=30"),
    ],
)  # fmt: skip
def test_every_helm_object_validates_strictly(values: tuple[str, ...]) -> None:
    _validate_all(helm_template(*values))


def test_the_validator_rejects_an_unknown_field() -> None:
    deployment = _by_kind(kustomize(KUSTOMIZE / "base"), "Deployment")["heritage-audio-api"]
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[0], strict=True)


def _normalized(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Objects by (kind, name), without the labels only Helm adds."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: strip(value) for key, value in node.items() if key not in HELM_ONLY_LABELS}
        if isinstance(node, list):
            return [strip(item) for item in node]
        return node

    return {(o["kind"], o["metadata"]["name"]): strip(o) for o in objects}


def test_the_helm_chart_renders_what_the_kustomize_base_does() -> None:
    """Defaults of the chart == the kustomize base: one cannot change without the other."""
    chart = _normalized(helm_template())
    base = _normalized(kustomize(KUSTOMIZE / "base"))
    assert sorted(chart) == sorted(base)
    for key in base:
        assert chart[key] == base[key], key


def test_workloads_are_hardened_like_the_systemd_units() -> None:
    for objects in (kustomize(KUSTOMIZE / "overlays" / "production"), helm_template()):
        deployments = _by_kind(objects, "Deployment")
        assert sorted(deployments) == [
            "heritage-audio-aggregate", "heritage-audio-api", "heritage-audio-worker"
        ]  # fmt: skip
        for deployment in deployments.values():
            pod = deployment["spec"]["template"]["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
            assert pod["automountServiceAccountToken"] is False
            for container in pod["containers"]:
                security = container["securityContext"]
                assert security["readOnlyRootFilesystem"] is True
                assert security["allowPrivilegeEscalation"] is False
                assert security["capabilities"] == {"drop": ["ALL"]}
                assert container["command"][1] != "daemon"  # capture stays on systemd hosts
                refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
                assert refs[1] == "heritage-audio-secrets"
        api = deployments["heritage-audio-api"]["spec"]["template"]["spec"]["containers"][0]
        assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
        hpa = _by_kind(objects, "HorizontalPodAutoscaler")["heritage-audio-worker"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == "heritage-audio-worker"
        assert {"heritage-audio-api", "heritage-audio-worker"} <= set(
            _by_kind(objects, "PodDisruptionBudget")
        )
        assert _by_kind(objects, "PersistentVolumeClaim")
        assert _by_kind(objects, "NetworkPolicy")
        assert _by_kind(objects, "Ingress")


def test_overlays_change_what_they_say() -> None:
    staging = kustomize(KUSTOMIZE / "overlays" / "staging")
    production = kustomize(KUSTOMIZE / "overlays" / "production")
    assert {o["metadata"].get("namespace") for o in staging} == {"heritage-audio-staging"}
    assert _by_kind(staging, "ConfigMap")["heritage-audio-config"]["data"]["ENVIRONMENT"] == (
        "staging"
    )
    assert _by_kind(production, "Deployment")["heritage-audio-api"]["spec"]["replicas"] == 3
    ingress = _by_kind(production, "Ingress")["heritage-audio"]
    assert ingress["spec"]["tls"][0]["secretName"] == "heritage-audio-tls"
    image = _by_kind(production, "Deployment")["heritage-audio-api"]["spec"]["template"]["spec"][
        "containers"
    ][0]["image"]
    assert image == "registry.example.org/heritage-audio:0.1.0"


def test_helm_values_override_the_rendered_objects() -> None:
    objects = helm_template(
        "api.replicas=4", "kafka.bootstrapServers=", "image.tag=1.2.3", release="museum"
    )
    deployments = _by_kind(objects, "Deployment")
    api = deployments["museum-heritage-audio-api"]
    assert api["spec"]["replicas"] == 4
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == "heritage-audio:1.2.3"
    config = _by_kind(objects, "ConfigMap")["museum-heritage-audio-config"]["data"]
    assert "KAFKA_BOOTSTRAP_SERVERS" not in config
    assert config["REDIS_HOST"] == "redis"


def test_helm_refuses_values_outside_its_schema() -> None:
    done = subprocess.run(
        [_tool("helm"), "template", "x", str(CHART), "--set", "environment=prod"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "environment" in done.stderr


def _queue_lists() -> set[str]:
    """The Redis lists Celery fills for the job priorities the API uses (api/jobs.py)."""
    from api.broker import QUEUE
    from api.jobs import PRIORITIES

    return {QUEUE if level == 0 else f"{QUEUE}:{level}" for level in PRIORITIES.values()}


def test_the_queue_scaler_replaces_the_cpu_hpa_and_watches_every_priority_list() -> None:
    keda = kustomize(KUSTOMIZE / "overlays" / "production-keda")
    assert not _by_kind(keda, "HorizontalPodAutoscaler")
    scaled = _by_kind(keda, "ScaledObject")["heritage-audio-worker"]
    assert scaled["metadata"]["namespace"] == "heritage-audio"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "heritage-audio-worker"
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, 20)
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["listName"] for t in triggers if t["type"] == "redis"} == _queue_lists()
    config = _by_kind(keda, "ConfigMap")["heritage-audio-config"]["data"]
    address = f"{config['REDIS_HOST']}:{config['REDIS_PORT']}"
    assert {t["metadata"]["address"] for t in triggers if t["type"] == "redis"} == {address}
    assert [t["type"] for t in triggers].count("cpu") == 1
    assert _by_kind(keda, "Deployment")["heritage-audio-worker"]


def test_the_keda_check_refuses_a_misspelt_scaler_field() -> None:
    keda = kustomize(KUSTOMIZE / "overlays" / "production-keda")
    scaled = copy.deepcopy(_by_kind(keda, "ScaledObject")["heritage-audio-worker"])
    scaled["spec"]["triggers"][0]["metadata"]["listname"] = "typo"
    with pytest.raises(jsonschema.ValidationError):
        _validate_keda(scaled)
    scaled = copy.deepcopy(_by_kind(keda, "ScaledObject")["heritage-audio-worker"])
    behavior = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    behavior["scaleDown"]["stabilisationWindowSeconds"] = 600
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate_keda(scaled)


def test_the_helm_queue_scaler_renders_what_the_kustomize_component_does(tmp_path: Path) -> None:
    """base + components/keda-queue-scaling == the chart with queueScaler.enabled."""
    component = KUSTOMIZE / "components" / "keda-queue-scaling"
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"resources: [{os.path.relpath(KUSTOMIZE / 'base', tmp_path)}]\n"
        f"components: [{os.path.relpath(component, tmp_path)}]\n"
    )
    base = _normalized(kustomize(tmp_path))
    chart = _normalized(helm_template("worker.autoscaling.queueScaler.enabled=true"))
    assert sorted(chart) == sorted(base)
    for key in base:
        assert chart[key] == base[key], key


def test_the_queue_lists_are_the_ones_celery_fills() -> None:
    """Send to a queue named like the job queue (on the machine's Redis, 6379) and see
    which Redis lists appear."""
    import uuid

    import redis

    from api.broker import celery_app
    from api.jobs import PRIORITIES
    from config.settings import Settings

    redis_port = 6379
    app = celery_app(Settings(REDIS_HOST="127.0.0.1", REDIS_PORT=redis_port))
    queue = f"heritage-analysis-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis(port=redis_port)
    try:
        for level in PRIORITIES.values():
            app.send_task("heritage.nothing", args=[], queue=queue, priority=level)
        lists = {k.decode() for k in client.keys(f"{queue}*")}
        assert lists == {queue if level == 0 else f"{queue}:{level}"
                         for level in PRIORITIES.values()}  # fmt: skip
    finally:
        for key in client.keys(f"{queue}*"):
            client.delete(key)
        client.close()
        app.close()

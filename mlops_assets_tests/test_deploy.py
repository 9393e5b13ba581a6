"""The deployed stack's configuration, checked without Docker, servers or a cluster.

``docker/compose.yaml`` is parsed and checked for its services, health checks, dependencies,
volumes and credentials. The Dagster instances (``docker/dagster.yaml``,
``deploy/k8s/dagster.yaml``) go through Dagster's own loading path (``InstanceRef.from_dir``) and
every class they name gets its config through that class's own schema, as at instance start-up,
minus the connections. The Helm values, rendered the way the chart renders them, must give the
same instance; the Kubernetes run config is validated against the retraining job running on
``k8s_job_executor``; the Kubernetes manifests are built into the models dagster-k8s uses.

Only ``docker compose config`` needs the Compose plugin; without it that one test is skipped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DOCKER = REPO / "docker"
K8S = REPO / "deploy" / "k8s"

STACK_SERVICES = {
    "postgres",
    "minio",
    "createbuckets",
    "mlflow",
    "user_code",
    "webserver",
    "daemon",
    "bento",
    "bento_proxy",
}
ONE_SHOT_SERVICES = {"createbuckets"}
LONG_RUNNING_SERVICES = sorted(STACK_SERVICES - ONE_SHOT_SERVICES)
NAMED_VOLUMES = {"postgres_data", "minio_data", "bentoml_store", "mlops_home", "bento_spool"}
DAGSTER_SERVICES = ["user_code", "webserver", "daemon"]
BUCKET = "mlops"
DATABASES = {"dagster", "mlflow", "optuna"}

SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN", re.IGNORECASE)
VARIABLE = r"[A-Za-z_][A-Za-z0-9_]*"
# Compose interpolation: ${VAR}, ${VAR:-default}, ${VAR?err}... and $VAR; `$$` is a literal `$`.
INTERPOLATION = re.compile(rf"\$\{{({VARIABLE})|\$({VARIABLE})")
ESCAPED = re.compile(rf"\$\$\{{?({VARIABLE})")
ONLY_A_REFERENCE = re.compile(rf"\$\{{{VARIABLE}\}}")
# scheme://user:password@host: the password part.
URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+:([^\s@/]+)@")
# --password=value, secret: value... in commands: the value part.
SECRET_ASSIGNMENT = re.compile(r"(?i)(?:password|secret|token)[\w-]*\s*[=:]\s*[\"']?([^\s\"']+)")


# --- helpers -------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition("=")
        pairs[name.strip()] = value.strip()
    return pairs


def strings(node: Any) -> Iterator[str]:
    """Every string value in a parsed YAML tree (mapping keys excluded)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def interpolated(text: str) -> set[str]:
    """Variables Compose substitutes in ``text``."""
    text = text.replace("$$", "")
    return {braced or bare for braced, bare in INTERPOLATION.findall(text)}


def environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the ``KEY=value`` list form."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.partition("=")[::2] for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snake_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """One level of camelCase keys to snake_case (the chart's own renaming)."""
    return {snake(key): value for key, value in mapping.items()}


def validate_instance(folder: Path) -> Any:
    """Load ``folder/dagster.yaml`` as Dagster does, and give each class its config.

    ``InstanceRef.from_dir`` validates the file against the instance schema (including the
    run-queue/concurrency conflicts); ``process_config`` with each class's ``config_type()`` is
    what ``ConfigurableClassData.rehydrate`` does before constructing it, ``env:`` lookups included.
    """
    from dagster._config import process_config
    from dagster._core.instance.ref import InstanceRef
    from dagster._serdes import class_from_code_pointer

    ref = InstanceRef.from_dir(str(folder))
    parts = {
        "storage": ref.storage_data,
        "run_launcher": ref.run_launcher_data,
        "run_coordinator": ref.run_coordinator_data,
        "compute_logs": ref.compute_logs_data,
        "scheduler": ref.scheduler_data,
    }
    for name, data in parts.items():
        assert data is not None, f"{folder}/dagster.yaml: no {name}"
        klass = class_from_code_pointer(data.module_name, data.class_name)
        result = process_config(klass.config_type(), yaml.safe_load(data.config_yaml) or {})
        assert result.success, f"{name} ({data.class_name}): {result.errors}"
    return ref


def instance_dir(tmp_path: Path, source: Path) -> Path:
    folder = tmp_path / "dagster_home"
    folder.mkdir()
    shutil.copy(source, folder / "dagster.yaml")
    return folder


def pool_config(ref: Any) -> tuple[str | None, int | None]:
    """The pool granularity and default limit Dagster reads from a checked instance."""
    from dagster._core.instance.config import ConcurrencyConfig

    pools = ConcurrencyConfig.from_concurrency_settings(
        ref.settings.get("concurrency") or {}, None
    ).pool_config
    granularity = pools.pool_granularity
    return (granularity.value if granularity else None), pools.default_pool_limit


# --- docker/compose.yaml -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(DOCKER / "compose.yaml")


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def test_compose_defines_the_stack(services: dict[str, Any]) -> None:
    assert set(services) == STACK_SERVICES


@pytest.mark.parametrize("name", LONG_RUNNING_SERVICES)
def test_long_running_service_has_healthcheck(services: dict[str, Any], name: str) -> None:
    check = services[name].get("healthcheck")
    assert check and check.get("test"), f"{name}: no healthcheck"
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    assert check["test"][0] in {"CMD", "CMD-SHELL"}
    assert services[name].get("restart") == "unless-stopped"


def test_one_shot_job_runs_once(services: dict[str, Any]) -> None:
    for name in ONE_SHOT_SERVICES:
        assert services[name].get("restart") == "no"
        assert "healthcheck" not in services[name]


def test_dependencies_wait_for_health_or_completion(services: dict[str, Any]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for target, options in depends.items():
            expected = (
                "service_completed_successfully"
                if target in ONE_SHOT_SERVICES
                else "service_healthy"
            )
            assert options.get("condition") == expected, f"{name} -> {target}"


def test_dependency_order(services: dict[str, Any]) -> None:
    def needs(name: str) -> set[str]:
        return set(services[name].get("depends_on") or {})

    assert {"minio"} <= needs("createbuckets")
    assert {"postgres", "createbuckets"} <= needs("mlflow")
    assert {"postgres", "createbuckets", "mlflow"} <= needs("user_code")
    assert {"postgres", "user_code"} <= needs("webserver")
    assert {"postgres", "user_code"} <= needs("daemon")


def test_named_volumes_are_declared_and_used(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    declared = set(compose.get("volumes") or {})
    assert declared == NAMED_VOLUMES
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/", "~")):
                continue  # a bind mount (the init script)
            assert source in declared, f"{name}: volume {source} is not declared"
            used.add(source)
    assert used == declared


def test_state_volumes_are_where_the_code_looks(services: dict[str, Any]) -> None:
    def mounts(name: str) -> dict[str, str]:
        return dict(v.split(":")[:2] for v in services[name].get("volumes") or [])

    user_code = mounts("user_code")
    env = environment(services["user_code"])
    assert user_code["bentoml_store"] == env["BENTOML_HOME"]
    assert user_code["mlops_home"] == env["MLOPS_HOME"]
    # The bento service serves from the store user_code writes.
    assert mounts("bento")["bentoml_store"] == environment(services["bento"])["BENTOML_HOME"]
    assert mounts("postgres")["postgres_data"] == "/var/lib/postgresql/data"
    assert mounts("minio")["minio_data"] == "/data"


def test_published_ports_are_local_only(services: dict[str, Any]) -> None:
    published = {}
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port}"
            published[port.split(":")[1]] = name
    assert published == {
        "3000": "webserver",
        "5000": "mlflow",
        "9000": "minio",
        "9001": "minio",
        "3001": "bento_proxy",  # the bento service itself is reached through its proxy only
    }


def test_no_credential_is_written_in_compose(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for variable, value in environment(service).items():
            if SECRET_NAME.search(variable):
                assert ONLY_A_REFERENCE.fullmatch(value), (
                    f"{name}: {variable} must be a ${{VAR}} reference, not a value"
                )
        for text in strings(service):
            for password in URL_PASSWORD.findall(text):
                assert ONLY_A_REFERENCE.fullmatch(password), f"{name}: password in URL {text!r}"
            for value in SECRET_ASSIGNMENT.findall(text):
                assert value.startswith(("${", "$$")), f"{name}: credential in {text!r}"


def test_every_variable_is_in_the_env_example(compose: dict[str, Any]) -> None:
    example = read_env_file(DOCKER / ".env.example")
    used = set().union(*(interpolated(text) for text in strings(compose)))
    assert used, "compose.yaml interpolates nothing"
    assert used - set(example) == set(), "missing from docker/.env.example"
    assert set(example) - used == set(), "unused variables in docker/.env.example"
    for name, value in example.items():
        if SECRET_NAME.search(name):
            assert "change-me" in value, f"docker/.env.example: {name} needs a placeholder"


def test_container_expansions_are_defined(services: dict[str, Any]) -> None:
    """``$$VAR`` is expanded by the container's shell: the service must define VAR."""
    for name, service in services.items():
        env = environment(service)
        for text in strings(service):
            for variable in ESCAPED.findall(text):
                assert variable in env, f"{name}: $${variable} is not in its environment"


def test_app_containers_point_at_the_stack(services: dict[str, Any]) -> None:
    for name in [*DAGSTER_SERVICES, "bento"]:
        env = environment(services[name])
        assert env["MLOPS_STORAGE_URI"] == f"s3://{BUCKET}/storage"
        assert env["MLOPS_LANDING_URI"] == f"s3://{BUCKET}/landing"
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    for name in DAGSTER_SERVICES:
        env = environment(services[name])
        # SQLAlchemy 2.1 reads plain postgresql:// as psycopg 3.
        assert env["MLOPS_OPTUNA_STORAGE"].startswith("postgresql+psycopg2://")
        assert env["MLOPS_OPTUNA_STORAGE"].endswith("@postgres:5432/optuna")
        assert env["DAGSTER_HOME"] == "/opt/dagster/dagster_home"
    assert "POSTGRES_PASSWORD" not in environment(services["bento"])


def test_mlflow_server_uses_postgres_and_the_bucket(services: dict[str, Any]) -> None:
    mlflow = services["mlflow"]
    env = environment(mlflow)
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    command = " ".join(mlflow["command"])
    assert f"--artifacts-destination=s3://{BUCKET}/mlflow" in command
    # The other containers call it by service name, which MLflow 3 rejects unless allowed.
    assert "--allowed-hosts=mlflow:5000" in command


def test_bucket_and_databases_are_created(services: dict[str, Any]) -> None:
    script = "\n".join(services["createbuckets"]["command"])
    assert f"mc mb --ignore-existing stack/{BUCKET}" in script
    init = (DOCKER / "postgres" / "init-databases.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE (\w+);", init))
    assert created == DATABASES
    mounted = [v for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert mounted and mounted[0].startswith("./postgres/init-databases.sql:")


@pytest.mark.parametrize("name", DAGSTER_SERVICES)
def test_dagster_services_mount_the_stack_instance(services: dict[str, Any], name: str) -> None:
    home = environment(services[name])["DAGSTER_HOME"]
    mounts = set(services[name]["volumes"])
    assert f"./dagster.yaml:{home}/dagster.yaml:ro" in mounts
    assert f"./workspace.yaml:{home}/workspace.yaml:ro" in mounts


def test_commands_match_the_workspace_and_ports(services: dict[str, Any]) -> None:
    from mlops_assets.specs import use_case_specs

    workspace = load_yaml(DOCKER / "workspace.yaml")
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    user_code = services["user_code"]["command"]
    assert user_code[:3] == ["dagster", "code-server", "start"]
    assert user_code[user_code.index("-p") + 1] == str(server["port"])
    assert user_code[user_code.index("-m") + 1] == "mlops_assets.definitions"
    assert user_code[user_code.index("--location-name") + 1] == server["location_name"]
    assert server["host"] == "user_code"
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == "/opt/dagster/dagster_home/workspace.yaml"
    bento = services["bento"]["command"]
    assert bento[:2] == ["mlops", "serve"]
    assert bento[2] in use_case_specs()
    # Bound to every interface inside the container, else the published port reaches nothing.
    assert bento[bento.index("--host") + 1] == "0.0.0.0"
    assert bento[bento.index("--port") + 1] == "3000"


def test_the_service_is_behind_a_proxy_with_keys_on(services: dict[str, Any]) -> None:
    """Slow headers are the proxy's to time out (uvicorn has no such timeout); the service
    checks keys, bodies and request ids itself. Its spool is a volume of its own."""
    proxy = services["bento_proxy"]
    assert proxy["image"].startswith("nginx:") and "latest" not in proxy["image"]
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["depends_on"] == {"bento": {"condition": "service_healthy"}}
    assert "ports" not in services["bento"]
    env = environment(services["bento"])
    assert env["MLOPS_SERVING_API_KEYS"] == "${MLOPS_SERVING_API_KEYS}"
    spool = env["MLOPS_PREDICTION_LOG_SPOOL"]
    assert f"bento_spool:{spool}" in services["bento"]["volumes"]
    assert spool in (DOCKER / "Dockerfile").read_text()  # owned by the app user in the image
    conf = (DOCKER / "nginx.conf").read_text()
    settings = dict(re.findall(r"^[ \t]*([a-z_]+) ([^;\n{]+);", conf, re.MULTILINE))
    assert settings["client_header_timeout"] == "10s"
    assert settings["proxy_pass"] == "http://bento"
    assert re.search(r"server bento:3000;", conf)
    listen = settings["listen"]
    assert proxy["ports"] == [f"127.0.0.1:3001:{listen}"]
    assert "8080/readyz" in " ".join(proxy["healthcheck"]["test"])


def test_docker_compose_config() -> None:
    docker = shutil.which("docker")
    probe = docker and subprocess.run(
        [docker, "compose", "version"], capture_output=True, timeout=30
    )
    if not probe or probe.returncode != 0:
        pytest.skip("the docker CLI has no compose plugin here (`docker compose version` fails)")
    result = subprocess.run(
        [
            docker,
            "compose",
            "-f",
            str(DOCKER / "compose.yaml"),
            "--env-file",
            str(DOCKER / ".env.example"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- docker/ images ------------------------------------------------------------------------------


def test_app_image_runs_as_a_user() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", dockerfile, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    # Environment-neutral: the instance is mounted per deployment, never baked in.
    assert "dagster.yaml" not in "".join(
        line for line in dockerfile.splitlines() if not line.startswith("#")
    )
    ignore = [
        line
        for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignore[0] == "*", "the build context must be an allow-list"
    assert "**/.env" in ignore
    assert not any(line.startswith(("!.venv", "!.mlops", "!.env")) for line in ignore)


def test_mlflow_image_has_the_drivers() -> None:
    dockerfile = (DOCKER / "Dockerfile.mlflow").read_text()
    for package in ("mlflow==", "psycopg2-binary", "boto3"):
        assert package in dockerfile
    assert re.findall(r"^USER (\S+)$", dockerfile, re.MULTILINE)[-1] != "root"


# --- .env.example at the root ------------------------------------------------------------------

CODE_VARIABLE = re.compile(r"(?:MLOPS|MLFLOW|BENTOML|DAGSTER|AWS)_[A-Z0-9_]+")
LISTED_VARIABLE = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)


def test_root_env_example_lists_every_variable_the_code_reads() -> None:
    """Every environment variable mlops_assets names is in .env.example (maybe commented)."""
    import ast

    read = set()
    for path in (REPO / "mlops_assets").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if CODE_VARIABLE.fullmatch(node.value):
                    read.add(node.value)
    listed = dict(LISTED_VARIABLE.findall((REPO / ".env.example").read_text()))
    assert {"MLOPS_STORAGE_URI", "AWS_SECRET_ACCESS_KEY", "MLOPS_OPTUNA_STORAGE"} <= read
    assert read - set(listed) == set(), "missing from .env.example"
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "DAGSTER_HOME", "BENTOML_HOME"):
        assert name in listed
    for name, value in listed.items():
        if SECRET_NAME.search(name) or URL_PASSWORD.search(value):
            assert "change-me" in value, f".env.example: {name} needs a placeholder"


# --- docker/dagster.yaml and workspace.yaml -------------------------------------------------------


def test_docker_instance_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("POSTGRES_USER", "POSTGRES_PASSWORD", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.setenv(variable, f"test-{variable.lower()}")
    ref = validate_instance(instance_dir(tmp_path, DOCKER / "dagster.yaml"))
    assert ref.storage_data.class_name == "DagsterPostgresStorage"
    assert ref.run_launcher_data.class_name == "DefaultRunLauncher"
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"
    assert ref.compute_logs_data.class_name == "S3ComputeLogManager"
    assert ref.settings["telemetry"] == {"enabled": False}
    assert pool_config(ref) == ("run", 1)


def test_docker_instance_keeps_credentials_in_env() -> None:
    config = load_yaml(DOCKER / "dagster.yaml")
    database = config["storage"]["postgres"]["postgres_db"]
    assert database["username"] == {"env": "POSTGRES_USER"}
    assert database["password"] == {"env": "POSTGRES_PASSWORD"}
    assert database["scheme"] == "postgresql+psycopg2"
    assert database["hostname"] == "postgres"
    assert database["db_name"] in DATABASES
    assert config["compute_logs"]["config"]["bucket"] == BUCKET
    # Limits only in the concurrency block: run_coordinator.config would conflict with it.
    assert "config" not in config["run_coordinator"]


def test_instances_share_the_pool_limits() -> None:
    """Every path (embedded, Compose, Kubernetes) keeps one retraining run per use case.

    A retrain pool's one slot is held by a whole run (``granularity: run``), not by each
    pooled step in turn, so a second retraining run of a use case cannot start between the
    first one's steps.
    """
    embedded = load_yaml(REPO / "instance" / "dagster.yaml")["concurrency"]["pools"]
    assert embedded == {"granularity": "run", "default_limit": 1}
    assert load_yaml(DOCKER / "dagster.yaml")["concurrency"]["pools"] == embedded
    assert load_yaml(K8S / "dagster.yaml")["concurrency"]["pools"] == embedded


def test_embedded_instance_validates(tmp_path: Path) -> None:
    """``instance/dagster.yaml`` (``DAGSTER_HOME`` links to it) loads, with run-granular pools."""
    import dagster as dg

    ref = validate_instance(instance_dir(tmp_path, REPO / "instance" / "dagster.yaml"))
    assert pool_config(ref) == ("run", 1)
    with dg.DagsterInstance.from_ref(ref) as instance:
        pools = instance.get_concurrency_config().pool_config
        assert (pools.pool_granularity.value, pools.default_pool_limit) == ("run", 1)


def test_the_embedded_instance_is_linked_not_found_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No dagster.yaml at the root, where `dg dev` (make dev) runs: Dagster would warn that a
    dagster.yaml in the current folder "will not be used" (it is, through the link). The
    instance folder links to ``instance/dagster.yaml``, and a link the old layout left dangling
    is replaced, by ``mlops`` and by ``make dev`` alike."""
    from mlops_assets.environment import Environment

    assert not (REPO / "dagster.yaml").exists() and not (REPO / "dagster.yml").exists()
    for how in ("mlops", "make"):
        home = tmp_path / how / "dagster"
        home.mkdir(parents=True)
        (home / "dagster.yaml").symlink_to(tmp_path / "gone" / "dagster.yaml")  # dangling
        if how == "mlops":
            monkeypatch.setenv("DAGSTER_HOME", str(home))  # restored afterwards
            env = Environment.from_env({"MLOPS_HOME": str(tmp_path), "DAGSTER_HOME": str(home)})
            env.ensure_dagster_home()
        else:
            subprocess.run(
                ["make", "-s", "dagster-home", f"DAGSTER_HOME={home}"], cwd=REPO, check=True
            )
        assert (home / "dagster.yaml").resolve() == REPO / "instance" / "dagster.yaml"


def test_docker_workspace_loads_the_grpc_server() -> None:
    from dagster._core.workspace.config_schema import ensure_workspace_config

    path = DOCKER / "workspace.yaml"
    workspace = ensure_workspace_config(load_yaml(path), str(path))
    assert workspace["load_from"] == [
        {"grpc_server": {"host": "user_code", "port": 4000, "location_name": "mlops_assets"}}
    ]


# --- deploy/k8s -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return load_yaml(K8S / "values.yaml")


@pytest.fixture(scope="module")
def k8s_instance() -> dict[str, Any]:
    return load_yaml(K8S / "dagster.yaml")


def test_k8s_instance_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("DAGSTER_PG_PASSWORD", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.setenv(variable, f"test-{variable.lower()}")
    ref = validate_instance(instance_dir(tmp_path, K8S / "dagster.yaml"))
    assert (ref.run_launcher_data.module_name, ref.run_launcher_data.class_name) == (
        "dagster_k8s",
        "K8sRunLauncher",
    )
    assert ref.run_coordinator_data.class_name == "QueuedRunCoordinator"
    assert pool_config(ref) == ("run", 1)


def test_k8s_instance_raw_kubernetes_config_is_valid(k8s_instance: dict[str, Any]) -> None:
    from dagster_k8s.models import k8s_snake_case_dict
    from kubernetes import client

    launcher = k8s_instance["run_launcher"]["config"]
    k8s_snake_case_dict(client.V1Container, launcher["run_k8s_config"]["container_config"])
    k8s_snake_case_dict(client.V1PodSpec, launcher["run_k8s_config"]["pod_spec_config"])
    for volume in launcher["volumes"]:
        k8s_snake_case_dict(client.V1Volume, volume)
    for mount in launcher["volume_mounts"]:
        k8s_snake_case_dict(client.V1VolumeMount, mount)
    database = k8s_instance["storage"]["postgres"]["postgres_db"]
    assert database["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert database["scheme"] == "postgresql+psycopg2"


def render_run_launcher(values: dict[str, Any], checked: dict[str, Any]) -> dict[str, Any]:
    """``runLauncher.config.k8sRunLauncher`` as the chart's dagsterYaml.runLauncher.k8s renders it.

    The fields the chart derives from the release (namespace, service account, instance ConfigMap,
    password Secret, home) are taken from the checked instance; the ConfigMap the chart adds for
    its own run environment is left out.
    """
    given = values["runLauncher"]["config"]["k8sRunLauncher"]
    from_release = (
        "job_namespace",
        "service_account_name",
        "instance_config_map",
        "postgres_password_secret",
        "dagster_home",
    )
    rendered = {key: checked[key] for key in from_release}
    rendered.update(
        load_incluster_config=given["loadInclusterConfig"],
        image_pull_policy=given["imagePullPolicy"],
        env_config_maps=[item["name"] for item in given.get("envConfigMaps", [])],
        env_secrets=[item["name"] for item in given.get("envSecrets", [])],
        volumes=given.get("volumes", []),
        volume_mounts=given.get("volumeMounts", []),
        run_k8s_config=snake_keys(given.get("runK8sConfig", {})),
    )
    return rendered


def test_helm_values_render_the_checked_instance(
    values: dict[str, Any], k8s_instance: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dagster._config import process_config
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_k8s import K8sRunLauncher
    from dagster_k8s.models import k8s_snake_case_dict
    from kubernetes import client

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    checked = k8s_instance["run_launcher"]["config"]
    rendered = render_run_launcher(values, checked)
    result = process_config(K8sRunLauncher.config_type(), rendered)
    assert result.success, result.errors

    def normalized(config: dict[str, Any]) -> dict[str, Any]:
        raw = config["run_k8s_config"]
        return {
            **config,
            "volumes": [k8s_snake_case_dict(client.V1Volume, v) for v in config["volumes"]],
            "volume_mounts": [
                k8s_snake_case_dict(client.V1VolumeMount, m) for m in config["volume_mounts"]
            ],
            "run_k8s_config": {
                "container_config": k8s_snake_case_dict(
                    client.V1Container, raw["container_config"]
                ),
                "pod_spec_config": k8s_snake_case_dict(client.V1PodSpec, raw["pod_spec_config"]),
            },
        }

    assert normalized(rendered) == normalized(checked)

    # Concurrency: the chart renders concurrency.pools/runs in snake_case, only when enabled.
    concurrency = values["concurrency"]
    assert concurrency["enabled"] is True
    rendered_concurrency = {
        "pools": snake_keys(concurrency["pools"]),
        "runs": snake_keys(concurrency["runs"]),
    }
    assert rendered_concurrency == k8s_instance["concurrency"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert "config" not in values["dagsterDaemon"]["runCoordinator"]

    # External PostgreSQL, same database as the instance, password only from the Secret.
    postgres = values["postgresql"]
    database = k8s_instance["storage"]["postgres"]["postgres_db"]
    assert postgres["enabled"] is False
    assert "postgresqlPassword" not in postgres
    assert values["generatePostgresqlPasswordSecret"] is False
    assert checked["postgres_password_secret"] == values["global"]["postgresqlSecretName"]
    assert {
        "hostname": postgres["postgresqlHost"],
        "username": postgres["postgresqlUsername"],
        "db_name": postgres["postgresqlDatabase"],
        "port": postgres["service"]["port"],
        "scheme": postgres["postgresqlScheme"],
        "params": postgres["postgresqlParams"],
    } == {key: value for key, value in database.items() if key != "password"}

    # Compute logs in the bucket, as in the instance.
    logs = values["computeLogManager"]
    assert logs["type"] == k8s_instance["compute_logs"]["class"]
    rendered_logs = snake_keys(logs["config"]["s3ComputeLogManager"])
    assert rendered_logs == k8s_instance["compute_logs"]["config"]
    assert process_config(S3ComputeLogManager.config_type(), rendered_logs).success

    assert values["telemetry"] == {"enabled": False}


def test_helm_user_deployment_serves_the_code_location(
    values: dict[str, Any], k8s_instance: dict[str, Any]
) -> None:
    section = values["dagster-user-deployments"]
    assert section["enabled"] is True
    (deployment,) = section["deployments"]
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == "mlops_assets.definitions"
    assert args[args.index("--location-name") + 1] == "mlops_assets"
    assert deployment["image"]["tag"] not in {"", "latest"}
    # Run pods take their config from the run launcher only (not the gRPC server's resources).
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    launcher = k8s_instance["run_launcher"]["config"]
    for source in (deployment, values["dagsterWebserver"], values["dagsterDaemon"]):
        assert [s["name"] for s in source["envSecrets"]] == launcher["env_secrets"]
        assert [c["name"] for c in source["envConfigMaps"]] == launcher["env_config_maps"]


def test_k8s_config_holds_no_credentials(values: dict[str, Any]) -> None:
    for path in [*K8S.glob("*.yaml")]:
        for document in yaml.safe_load_all(path.read_text()):
            for text in strings(document):
                assert not URL_PASSWORD.findall(text), f"{path.name}: password in URL {text!r}"
    for name, value in read_env_file(K8S / ".env.example").items():
        assert "change-me" in value, f"deploy/k8s/.env.example: {name} needs a placeholder"


def test_k8s_run_config_validates_on_k8s_job_executor(
    mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the ConfigMap's MLOPS_RETRAIN_EXECUTOR the retrain job runs on k8s_job_executor, and
    run_config.yaml is valid for it.

    The retrain job sets no executor of its own: it takes the code location's, which the
    Definitions get from the environment (``components.resources.executor_for``).
    """
    import dagster as dg
    from dagster_k8s import k8s_job_executor
    from dagster_k8s.models import k8s_snake_case_dict
    from kubernetes import client

    from mlops_assets import names
    from mlops_assets.definitions import defs

    config_map = next(
        d
        for d in yaml.safe_load_all((K8S / "mlops-base.yaml").read_text())
        if d and d.get("kind") == "ConfigMap"
    )
    monkeypatch.setenv("MLOPS_RETRAIN_EXECUTOR", config_map["data"]["MLOPS_RETRAIN_EXECUTOR"])
    definitions = defs()
    job = definitions.resolve_job_def(names.retrain_job("bigmart_sales"))
    assert job.executor_def is k8s_job_executor
    # The light daily ingestion keeps its in-process executor whatever the retraining uses.
    ingest = definitions.resolve_job_def(names.ingest_job("bigmart_sales"))
    assert ingest.executor_def is dg.in_process_executor
    run_config = load_yaml(K8S / "run_config.yaml")
    result = dg.validate_run_config(job, run_config)
    assert result["execution"]["k8s"]["max_concurrent"] >= 1

    execution = run_config["execution"]["config"]
    step_keys = set(job.graph.node_dict)
    assert set(execution["per_step_k8s_config"]) <= step_keys
    for step_config in [execution["step_k8s_config"], *execution["per_step_k8s_config"].values()]:
        k8s_snake_case_dict(client.V1Container, step_config["container_config"])


def test_retrain_executor_is_chosen_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagster as dg

    from mlops_assets.components.resources import executor_for
    from mlops_assets.environment import Environment

    monkeypatch.delenv("MLOPS_RETRAIN_EXECUTOR", raising=False)
    assert executor_for(Environment.from_env()) is dg.in_process_executor
    monkeypatch.setenv("MLOPS_RETRAIN_EXECUTOR", "multiprocess")
    assert executor_for(Environment.from_env()) is dg.multiprocess_executor
    monkeypatch.setenv("MLOPS_RETRAIN_EXECUTOR", "threads")
    with pytest.raises(ValueError, match="MLOPS_RETRAIN_EXECUTOR must be one of .* 'threads'"):
        executor_for(Environment.from_env())


def test_optuna_workers_job_shares_the_study(values: dict[str, Any]) -> None:
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
    from kubernetes import client

    from mlops_assets.specs import use_case_specs

    manifest = load_yaml(K8S / "optuna-workers-job.yaml")
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    job = k8s_model_from_dict(client.V1Job, k8s_snake_case_dict(client.V1Job, manifest))
    assert job.spec.parallelism >= 2
    assert job.spec.completions >= job.spec.parallelism
    assert job.spec.completion_mode == "Indexed"
    pod = job.spec.template.spec
    assert pod.restart_policy == "Never"
    assert pod.security_context.run_as_non_root
    (container,) = pod.containers
    image = values["dagster-user-deployments"]["deployments"][0]["image"]
    assert container.image == f"{image['repository']}:{image['tag']}"
    assert container.command[0] == "mlops"
    assert container.command[2] in use_case_specs()
    # The study's storage (MLOPS_OPTUNA_STORAGE) and every credential come from the Secret.
    sources = {(ref.config_map_ref or ref.secret_ref).name for ref in container.env_from}
    assert sources == {"mlops-config", "mlops-secrets"}
    assert not container.env, "no literal environment on the worker"
    assert "MLOPS_OPTUNA_STORAGE" in read_env_file(K8S / ".env.example")


def test_k8s_base_manifests(services: dict[str, Any]) -> None:
    from dagster_k8s.models import k8s_model_from_dict, k8s_snake_case_dict
    from kubernetes import client

    manifests = yaml.safe_load_all((K8S / "mlops-base.yaml").read_text())
    documents = {document["kind"]: document for document in manifests}
    config_map = k8s_model_from_dict(
        client.V1ConfigMap, k8s_snake_case_dict(client.V1ConfigMap, documents["ConfigMap"])
    )
    claim = k8s_model_from_dict(
        client.V1PersistentVolumeClaim,
        k8s_snake_case_dict(client.V1PersistentVolumeClaim, documents["PersistentVolumeClaim"]),
    )
    assert claim.spec.access_modes == ["ReadWriteMany"]
    assert not any(SECRET_NAME.search(name) for name in config_map.data), "secrets in ConfigMap"
    # Same variables as the Compose app containers, minus the Compose-only instance credentials.
    compose_env = set(environment(services["user_code"])) - {
        "DAGSTER_HOME",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
    }
    provided = set(config_map.data) | set(read_env_file(K8S / ".env.example"))
    assert compose_env - provided == set()

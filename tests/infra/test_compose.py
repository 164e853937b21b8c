"""infra/: no container engine or cloud runs here, so the files are validated, not run.

Checked: the Terraform parses and says what the README promises (versioned, encrypted, private
bucket; a lifecycle that never expires a table file; a least-privilege policy), `terraform fmt`,
the compose file's services (and `docker-compose config` where installed), and the Dockerfile's shape.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib.metadata import version

import hcl2
import pytest
import yaml

from tests.support.paths import REPO

INFRA = REPO / "infra"


def resources() -> dict[str, dict]:
    """Terraform resources by type (python-hcl2 keeps HCL's quotes: strip them)."""
    with (INFRA / "terraform" / "main.tf").open() as handle:
        document = hcl2.load(handle)
    found = {}
    for block in document["resource"]:
        for kind, named in block.items():
            for body in named.values():
                found[kind.strip('"')] = body
    return found


def unquoted(value: object) -> object:
    return value.strip('"') if isinstance(value, str) else value


def test_bucket_is_versioned_encrypted_private_and_never_expires_a_table_file() -> None:
    r = resources()
    assert unquoted(r["aws_s3_bucket_versioning"]["versioning_configuration"][0]["status"]) == "Enabled"
    encryption = r["aws_s3_bucket_server_side_encryption_configuration"]["rule"][0]
    assert "sse_algorithm" in encryption["apply_server_side_encryption_by_default"][0]
    block = r["aws_s3_bucket_public_access_block"]
    for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert block[flag] is True, flag
    rules = {unquoted(rule["id"]): rule for rule in r["aws_s3_bucket_lifecycle_configuration"]["rule"]}
    # Expiring objects under a Delta table's folder would delete files its log names.
    for rule in rules.values():
        if "expiration" in rule:
            prefix = unquoted(rule["filter"][0]["prefix"])
            assert not any(table in prefix for table in ("articles/", "_quarantine/", "_validation_results/"))
            assert prefix.endswith("/_validation/"), prefix
    assert "noncurrent_version_expiration" in rules["expire-noncurrent-versions"]


@pytest.mark.parametrize("kms", [None, "arn:aws:kms:us-east-1:111122223333:key/abc"])
def test_pipeline_policy_grants_only_what_a_run_does(kms: str | None) -> None:
    template = (INFRA / "terraform" / "pipeline-policy.json.tftpl").read_text()
    # Render the template's two constructs as Terraform would: ${name} and one %{ if } block.
    text = re.sub(
        r"%\{ if kms_key_arn != null \}(.*?)%\{ endif \}",
        lambda m: m.group(1) if kms else "",
        template,
        flags=re.S,
    )
    text = (
        text.replace("${bucket}", "lake-bucket")
        .replace("${prefix}", "lake")
        .replace("${kms_key_arn}", kms or "")
    )
    policy = json.loads(text)
    actions = sorted(
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    )
    expected = ["s3:DeleteObject", "s3:GetObject", "s3:ListBucket", "s3:PutObject"]
    assert actions == sorted(expected + (["kms:Decrypt", "kms:GenerateDataKey"] if kms else []))
    assert not any("*" in a for a in actions)
    objects = next(s for s in policy["Statement"] if s["Sid"] == "ReadWriteLakeObjects")
    assert objects["Resource"] == "arn:aws:s3:::lake-bucket/lake/*"
    listing = next(s for s in policy["Statement"] if s["Sid"] == "ListLakePrefixOnly")
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["lake/*"]


def test_terraform_is_formatted() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed here (`terraform validate` needs provider downloads anyway)")
    done = subprocess.run(
        [terraform, "fmt", "-check", "-diff", str(INFRA / "terraform")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_server_postgres_minio_and_two_workers() -> None:
    compose = yaml.safe_load((INFRA / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "prefect-server", "minio", "minio-init", "deploy", "worker"}
    assert (
        "postgresql+asyncpg://"
        in services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    )
    assert services["prefect-server"]["image"].startswith(
        f"prefecthq/prefect:{version('prefect')}-python3.11"
    )
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"][:4] == ["worker", "start", "--pool", "feedlake"]
    assert services["deploy"]["command"] == ["deploy", "--pool", "feedlake"]
    environment = services["worker"]["environment"]
    assert (
        environment["FEEDLAKE_LAKE"].startswith("s3://")
        and environment["AWS_ENDPOINT_URL"] == "http://minio:9000"
    )
    # No literal secret: every credential comes from the environment (an .env file), with a local placeholder.
    assert environment["AWS_SECRET_ACCESS_KEY"].startswith("${")
    checker = shutil.which("docker-compose")
    if checker is None:
        pytest.skip("docker-compose is not installed: the structure above was checked, `config` was not run")
    done = subprocess.run(
        [checker, "-f", str(INFRA / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_dockerfile_installs_the_package_and_runs_unprivileged() -> None:
    lines = [
        line.strip()
        for line in (INFRA / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "FROM python:3.11-slim"
    # Installed with the constraints file, like the Makefile and CI; every package folder copied in.
    assert any(line.startswith("RUN pip install -c infra/constraints.txt .") for line in lines)
    copied = {line.split()[1] for line in lines if line.startswith("COPY ")}
    assert {"api", "flows", "tasks", "schemas", "infra/constraints.txt"} <= copied
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] != "USER root"
    assert 'ENTRYPOINT ["feedlake"]' in lines
    root = INFRA.parent
    for line in lines:
        if line.startswith("COPY "):
            for path in line.split()[1:-1]:
                assert (root / path).exists(), path

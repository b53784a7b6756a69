"""The import graph follows the layers: the contracts in setup.cfg's ``[importlinter]`` hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN = "import sys; from importlinter.cli import lint_imports_command as run; sys.exit(run())"


def lint_imports(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run lint-imports on the repository, as ``make lint`` does."""
    return subprocess.run(
        [sys.executable, "-c", RUN, "--no-cache", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_layer_contract_is_kept() -> None:
    result = lint_imports()

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_an_import_against_the_layers_is_reported(tmp_path: Path) -> None:
    # The web layer does import the serving layer: a contract forbidding it must break.
    config = tmp_path / "contracts.ini"
    config.write_text(
        "[importlinter]\nroot_packages =\n    service\n\n"
        "[importlinter:contract:upside-down]\nname = serving above web\ntype = layers\n"
        "layers =\n    service.serving\n    service.web\n"
    )

    result = lint_imports("--config", str(config))

    assert result.returncode == 1
    assert "service.serving is not allowed to import service.web" not in result.stdout
    assert "service.web is not allowed to import service.serving" in result.stdout

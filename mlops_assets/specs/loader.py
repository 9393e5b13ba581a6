"""Load and validate specs so that a bad one fails definitions load with the field named."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlops_assets.specs.model import UseCaseSpec

BUNDLED_SPECS_DIR = Path(__file__).resolve().parent


class SpecError(ValueError):
    """A use-case spec is invalid; the message names the file and the field."""


def _format_errors(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  field `{loc}`: {item['msg']}")
    return f"invalid use-case spec {source}:\n" + "\n".join(lines)


def parse_spec(data: dict[str, Any], source: str = "<dict>") -> UseCaseSpec:
    """Validate a spec given as a mapping."""
    try:
        return UseCaseSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_format_errors(source, error)) from None


def load_spec(path: Path) -> UseCaseSpec:
    """Read and validate one YAML spec file."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SpecError(f"invalid use-case spec {path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SpecError(f"invalid use-case spec {path}: expected a mapping at the top level")
    return parse_spec(data, str(path))


def spec_dirs() -> list[Path]:
    """The bundled specs, plus any folders listed in ``MLOPS_SPECS_DIRS`` (``:``-separated)."""
    extra = [Path(p) for p in os.environ.get("MLOPS_SPECS_DIRS", "").split(os.pathsep) if p]
    return [BUNDLED_SPECS_DIR, *extra]


def load_specs(dirs: list[Path] | None = None) -> dict[str, UseCaseSpec]:
    """All specs by name; a duplicate name is an error, not a silent override."""
    specs: dict[str, UseCaseSpec] = {}
    for folder in dirs if dirs is not None else spec_dirs():
        for path in sorted(folder.glob("*.yaml")):
            spec = load_spec(path)
            if spec.name in specs:
                raise SpecError(f"invalid use-case spec {path}: name `{spec.name}` is used twice")
            specs[spec.name] = spec
    return specs

"""Every use case: the bundled ``defs.yaml`` instances and those of outside folders, validated.

A use case is a ``<use_case>/defs.yaml`` instance of the ``UseCase`` component: bundled ones in
the package's defs folder (``mlops_assets/defs/``), and a user's own in outside folders
(``MLOPS_SPECS_DIRS``) with the same layout. :func:`use_case_instances` lists and validates them
all (an invalid spec fails naming the file and the field; a name used twice fails too); the code
location's ``definitions.py``, the ``mlops`` CLI and the bento worker all read use cases through
it, so they agree on what exists. It reads YAML only: no Dagster import.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mlops_assets import names
from mlops_assets.specs.model import UseCaseSpec

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "defs"


class SpecError(ValueError):
    """A use-case spec is invalid; the message names the file and the field."""


@dataclass(frozen=True)
class UseCaseInstance:
    """One use case's ``defs.yaml`` and its validated spec."""

    path: Path
    spec: UseCaseSpec
    bundled: bool


def _format_errors(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = ".".join(str(part) for part in item["loc"]) or "<root>"
        lines.append(f"  field `{loc}`: {item['msg']}")
    return f"invalid use-case spec {source}:\n" + "\n".join(lines)


def parse_spec(data: dict[str, Any], source: str = "<dict>") -> UseCaseSpec:
    """Validate a spec given as a mapping (a ``defs.yaml``'s ``attributes``)."""
    try:
        return UseCaseSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_format_errors(source, error)) from None


def load_instance(path: Path, bundled: bool = False) -> UseCaseInstance:
    """Read and validate one ``defs.yaml``."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SpecError(f"invalid use-case spec {path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SpecError(f"invalid use-case spec {path}: expected a mapping at the top level")
    if data.get("type") != names.COMPONENT_TYPE:
        raise SpecError(
            f"invalid use-case spec {path}: field `type` must be {names.COMPONENT_TYPE}, "
            f"got {data.get('type')!r}"
        )
    attributes = data.get("attributes")
    if not isinstance(attributes, dict):
        raise SpecError(f"invalid use-case spec {path}: field `attributes` must be a mapping")
    return UseCaseInstance(path, parse_spec(attributes, str(path)), bundled)


def instance_files(folder: Path) -> list[Path]:
    """The ``<use_case>/defs.yaml`` files directly below a folder."""
    return sorted(p for p in Path(folder).glob(f"*/{names.DEFS_FILE}") if p.is_file())


def use_case_instances(outside: Iterable[Path] = ()) -> list[UseCaseInstance]:
    """The bundled use cases, then those of the ``outside`` folders; names must be unique.

    Raises:
        SpecError: A spec is invalid, an outside folder does not exist, or a name is used twice.
    """
    found: list[UseCaseInstance] = [load_instance(p, True) for p in instance_files(BUNDLED_DIR)]
    for folder in outside:
        if not Path(folder).is_dir():
            raise SpecError(f"use-case folder {folder} (MLOPS_SPECS_DIRS) does not exist")
        found += [load_instance(p) for p in instance_files(folder)]
    seen: dict[str, Path] = {}
    for instance in found:
        if instance.spec.name in seen:
            raise SpecError(
                f"invalid use-case spec {instance.path}: name `{instance.spec.name}` is used "
                f"by {seen[instance.spec.name]} too"
            )
        seen[instance.spec.name] = instance.path
    return found


def use_case_specs(outside: Iterable[Path] = ()) -> dict[str, UseCaseSpec]:
    """Every use case's spec by name (see :func:`use_case_instances`)."""
    return {i.spec.name: i.spec for i in use_case_instances(outside)}

"""The OpenAPI document says what the service answers (schemathesis found 415 and 422 missing,
and a 400 whose ``detail`` the document calls text while BentoML sent a list)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mlops_assets.environment import ServingOptions
from mlops_assets.serving.openapi import describe, page_text, service_document
from mlops_assets.specs import UseCaseSpec


def bentoml_document() -> dict[str, Any]:
    """The shape of BentoML's own ``/docs.json`` for our two routes."""
    route = {
        "post": {
            "requestBody": {"content": {"application/json": {"schema": {}}}},
            "responses": {
                "200": {"description": "Successful Response", "content": {}},
                "400": {"description": "Bad Request"},
                "404": {"description": "Not Found"},
                "500": {"description": "Internal Server Error"},
            },
        }
    }
    return {
        "info": {"title": "bigmart_sales_service", "contact": {"name": "BentoML Team"}},
        "paths": {"/predict": route, "/predict_columns": route, "/healthz": {"get": {}}},
        "components": {"schemas": {}},
    }


def test_every_refusal_is_documented_on_both_routes() -> None:
    document = describe(bentoml_document(), title="t", description="d", api_keys=False)
    for route in ("/predict", "/predict_columns"):
        operation = document["paths"][route]["post"]
        assert set(operation["responses"]) == {"200", "400", "408", "413", "415", "422", "500"}
        assert "security" not in operation
        [header] = operation["parameters"]
        assert header["name"] == "X-Request-ID" and header["schema"]["maxLength"] == 128
        for status in ("200", "400", "422"):
            assert "X-Request-ID" in operation["responses"][status]["headers"]
    schemas = document["components"]["schemas"]
    assert schemas["Problem"]["properties"]["detail"]["type"] == "string"
    assert schemas["RecordProblems"]["properties"]["detail"]["type"] == "array"
    assert document["info"]["title"] == "t" and "contact" not in document["info"]
    assert bentoml_document()["paths"]["/predict"]["post"]["responses"].keys() >= {"404"}


def test_keys_are_documented_when_required() -> None:
    document = describe(bentoml_document(), title="t", description="d", api_keys=True)
    operation = document["paths"]["/predict"]["post"]
    assert "401" in operation["responses"]
    assert operation["security"] == [{"bearer": []}, {"apiKey": []}]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "security" not in document["paths"]["/healthz"]["get"]


def test_the_page_says_which_use_case_and_limits(spec: UseCaseSpec) -> None:
    options = ServingOptions(max_records=500, api_keys=("k" * 16,))
    title, description = page_text(spec, options, 1_000_000)
    assert title == "bigmart_sales: predictions of the champion model"
    assert "500 records" in description and "1,000,000 bytes" in description
    assert "API key is needed" in description
    title, rewrite = service_document(spec, ServingOptions())
    assert rewrite(bentoml_document())["info"]["title"] == title


SCHEMATHESIS_CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "missing_required_header",
    "unsupported_method",
]
"""Every check that applies to a stateless scoring API but ``positive_data_acceptance``: the
document allows numbers as numeric text ("12.5", as a CSV holds them), and JSON Schema cannot
bound a number written as text, so a schema-valid ``"Item_Weight": "0"`` is rightly a 422."""


@pytest.mark.integration
def test_schemathesis_finds_no_5xx_and_no_undocumented_answer(
    bento_server: Any, tmp_path: Path
) -> None:
    """A seeded run of a fixed number of examples per operation against ``bentoml serve``.

    It found 422 and 415 undocumented, a 400 whose ``detail`` disagreed with the document,
    the columnar answer's ``ids`` shaped unlike the document, and a numeric text that
    crashed the worker (``1e<40 digits>``, a segmentation fault in pandas' parser).
    """
    import psutil

    from mlops_assets_tests.harness.processes import venv_executable

    def worker() -> int:
        tree = psutil.Process(bento_server.process.pid).children(recursive=True)
        return next(p.pid for p in tree if "_bentoml_impl.worker" in " ".join(p.cmdline()))

    before = worker()
    done = subprocess.run(
        [
            str(venv_executable("st")),
            "run",
            f"{bento_server.url}/docs.json",
            "--seed=7",
            "--max-examples=100",
            "--workers=1",
            "--no-color",
            "--generation-database=none",
            "--suppress-health-check=all",
            f"--checks={','.join(SCHEMATHESIS_CHECKS)}",
            f"--header=X-API-Key: {bento_server.api_key}",
            "--request-timeout=30",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert re.search(r"\d+ generated, \d+ passed", done.stdout), done.stdout[-2000:]
    assert worker() == before  # the worker never crashed (BentoML would have restarted it)

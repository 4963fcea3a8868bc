"""The served OpenAPI document describes exactly the shared contract models."""

from __future__ import annotations

import json
from typing import Any

import httpx

from shared_utils.contract import CONTRACT_MODELS, HEALTH_PATH, PROCESS_PATH, contract_json_schema

FASTAPI_REF = "#/components/schemas/"
JSON_SCHEMA_REF = "#/$defs/"


def normalise(schema: object) -> object:
    """Differences that are presentation only: where $refs point, and `default: null`.

    FastAPI leaves out `"default": null`; for validation an absent default and a null default
    are the same (the field is optional either way, `required` is compared as is).
    """
    if isinstance(schema, dict):
        return {
            key: normalise(value)
            for key, value in schema.items()
            if not (key == "default" and value is None)
        }
    if isinstance(schema, list):
        return [normalise(item) for item in schema]
    if isinstance(schema, str) and schema.startswith(FASTAPI_REF):
        return JSON_SCHEMA_REF + schema[len(FASTAPI_REF) :]
    return schema


async def served(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_component_schemas_are_the_contract_models(client: httpx.AsyncClient) -> None:
    components = (await served(client))["components"]["schemas"]
    expected = contract_json_schema()["$defs"]
    assert sorted(components) == sorted(expected)
    for name, schema in expected.items():
        assert normalise(components[name]) == normalise(schema), name
    assert set(CONTRACT_MODELS) <= set(components)


async def test_routes_use_the_contract_models(client: httpx.AsyncClient) -> None:
    paths = (await served(client))["paths"]
    assert set(paths) == {HEALTH_PATH, PROCESS_PATH}

    def ref(response: dict[str, Any]) -> str:
        ref_value: str = response["content"]["application/json"]["schema"]["$ref"]
        return ref_value.removeprefix(FASTAPI_REF)

    process = paths[PROCESS_PATH]["post"]
    assert ref(process["requestBody"]) == "ProcessRequest"
    assert process["requestBody"]["required"] is True
    responses = process["responses"]
    assert ref(responses["200"]) == "ProcessResponse"
    for status in ("400", "413", "422", "429", "500"):
        assert ref(responses[status]) == "ErrorResponse", status
    health = paths[HEALTH_PATH]["get"]
    assert ref(health["responses"]["200"]) == "HealthResponse"


async def test_no_fastapi_default_error_schema_is_advertised(client: httpx.AsyncClient) -> None:
    text = json.dumps(await served(client))
    assert "HTTPValidationError" not in text
    assert "ValidationError" not in text.replace("RequestValidationError", "")

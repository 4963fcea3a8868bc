"""Bearer tokens: every case of the check, and that a token never shows in errors or logs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from shared_utils.settings import SettingsError, load_settings
from sts_service.auth import BearerAuthMiddleware
from sts_service.config import StsSettings

TOKENS = "alpha-token-0123456789,beta-token-9876543210"


def _error(body: dict[str, Any]) -> dict[str, Any]:
    error: dict[str, Any] = body["error"]
    return error


async def test_without_tokens_no_header_is_needed(
    make_client: Callable[..., Any], make_body: Callable[..., Any]
) -> None:
    async with make_client() as client:
        answer = await client.post("/v1/process", json=make_body())
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing bearer token"),
        ({"authorization": "Basic YWxhZGRpbjpvcGVu"}, "not `Bearer <token>`"),
        ({"authorization": "Bearer"}, "not `Bearer <token>`"),
        ({"authorization": "Bearer wrong-token"}, "not valid"),
        ({"authorization": "Bearer alpha-token-012345678"}, "not valid"),  # a prefix
        ({"authorization": "Bearer alpha-token-0123456789x"}, "not valid"),  # longer
    ],
)
async def test_missing_or_wrong_token_gets_401_with_the_contract_body(
    make_client: Callable[..., Any],
    make_body: Callable[..., Any],
    headers: dict[str, str],
    message: str,
) -> None:
    async with make_client(auth_tokens=TOKENS) as client:
        answer = await client.post("/v1/process", json=make_body(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    error = _error(answer.json())
    assert error["code"] == "INVALID_REQUEST" and error["retryable"] is False
    assert message in error["message"]
    assert "alpha" not in answer.text and "beta" not in answer.text


@pytest.mark.parametrize("token", ["alpha-token-0123456789", "beta-token-9876543210"])
@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
async def test_each_configured_token_is_accepted(
    make_client: Callable[..., Any], make_body: Callable[..., Any], token: str, scheme: str
) -> None:
    async with make_client(auth_tokens=TOKENS) as client:
        answer = await client.post(
            "/v1/process", json=make_body(), headers={"authorization": f"{scheme} {token}"}
        )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("path", ["/v1/health", "/metrics"])
async def test_health_and_metrics_stay_open(make_client: Callable[..., Any], path: str) -> None:
    async with make_client(auth_tokens=TOKENS) as client:
        answer = await client.get(path)
    assert answer.status_code == 200


async def test_other_routes_need_the_token_too(make_client: Callable[..., Any]) -> None:
    async with make_client(auth_tokens=TOKENS) as client:
        assert (await client.get("/openapi.json")).status_code == 401
        assert (await client.get("/nowhere")).status_code == 401


async def test_a_wrong_token_is_logged_without_its_value(
    make_client: Callable[..., Any], make_body: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_client(auth_tokens=TOKENS) as client:
        await client.post(
            "/v1/process", json=make_body(), headers={"authorization": "Bearer guess-123"}
        )
    assert "wrong bearer token" in caplog.text
    assert "guess-123" not in caplog.text and "alpha-token" not in caplog.text


def test_tokens_setting_parses_commas_and_blanks() -> None:
    settings = StsSettings(auth_tokens=SecretStr(" a-token , ,b-token,"))
    assert settings.bearer_tokens() == ("a-token", "b-token")
    assert StsSettings().bearer_tokens() == ()


def test_tokens_never_show_in_the_settings_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STS_AUTH_TOKENS", TOKENS)
    settings = load_settings(StsSettings)
    assert "alpha" not in repr(settings) and "alpha" not in str(settings.model_dump())
    monkeypatch.setenv("STS_PORT", "not-a-port")
    with pytest.raises(SettingsError) as caught:
        load_settings(StsSettings)
    assert "alpha" not in str(caught.value)


def test_every_token_is_compared_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return a == b

    monkeypatch.setattr("sts_service.auth.hmac.compare_digest", spy)
    middleware = BearerAuthMiddleware(app=None, tokens=["one", "two", "three"], open_paths=())  # type: ignore[arg-type]  # the app is never called here
    assert middleware._accepts(b"one")
    assert compared == [b"one", b"two", b"three"], "no early exit on the first match"

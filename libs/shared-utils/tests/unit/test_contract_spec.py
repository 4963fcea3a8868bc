from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from shared_utils.contract import CONTRACT_MODELS, contract_json_schema, contract_json_schema_text
from shared_utils.contract_cli import (
    SCHEMA_BEGIN_MARKER,
    SCHEMA_END_MARKER,
    SpecFormatError,
    extract_schema_block,
    main,
    render_schema_block,
    update_spec_text,
)

SPEC = Path("specs") / "002-sts-contract.md"
REGENERATE = (
    "cd libs/shared-utils && .venv/bin/python -m shared_utils.contract_cli "
    "--write-spec ../../specs/002-sts-contract.md"
)


@pytest.fixture
def spec_text(repo_root: Path) -> str:
    return (repo_root / SPEC).read_text(encoding="utf-8")


def test_spec_schema_block_matches_the_models(spec_text: str) -> None:
    block = extract_schema_block(spec_text)
    assert block == render_schema_block(), (
        f"{SPEC} is stale: the contract models changed. Regenerate it with: {REGENERATE}"
    )


def test_spec_block_is_valid_json_equal_to_the_schema(spec_text: str) -> None:
    block = extract_schema_block(spec_text)
    body = block.removeprefix("```json\n").removesuffix("```\n")
    assert json.loads(body) == contract_json_schema()


def test_spec_and_readme_give_the_regenerate_command(spec_text: str, repo_root: Path) -> None:
    readme = (repo_root / "libs" / "shared-utils" / "README.md").read_text(encoding="utf-8")
    assert REGENERATE in spec_text
    assert REGENERATE in readme


def test_spec_examples_validate_against_the_models(spec_text: str) -> None:
    examples = re.findall(r"<!-- example: (\w+) -->\n```json\n(.*?)```", spec_text, re.DOTALL)
    assert {name for name, _ in examples} == set(CONTRACT_MODELS)
    for name, body in examples:
        CONTRACT_MODELS[name].model_validate_json(body)


def test_schema_covers_every_wire_model() -> None:
    schema = contract_json_schema()
    assert set(CONTRACT_MODELS) <= set(schema["$defs"])
    audio = schema["$defs"]["AudioPayload"]["properties"]
    assert audio["channels"]["enum"] == [1, 2]
    assert 16000 in audio["sample_rate_hz"]["enum"]
    request = schema["$defs"]["ProcessRequest"]
    assert request["additionalProperties"] is False
    assert request["properties"]["timeout_ms"]["minimum"] == 1000
    assert request["properties"]["timeout_ms"]["maximum"] == 30000


def test_schema_text_is_stable() -> None:
    assert contract_json_schema_text() == contract_json_schema_text()
    assert contract_json_schema_text().endswith("}\n")


# ------------------------------------------------------------------------------ the CLI


def _spec(tmp_path: Path, inner: str = "stale\n") -> Path:
    path = tmp_path / "spec.md"
    path.write_text(f"# Title\n\n{SCHEMA_BEGIN_MARKER}\n{inner}{SCHEMA_END_MARKER}\ntail\n")
    return path


def test_write_spec_replaces_only_the_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _spec(tmp_path)
    assert main(["--write-spec", str(path)]) == 0
    text = path.read_text()
    assert text.startswith(f"# Title\n\n{SCHEMA_BEGIN_MARKER}\n```json\n")
    assert text.endswith(f"```\n{SCHEMA_END_MARKER}\ntail\n")
    assert extract_schema_block(text) == render_schema_block()
    assert "contract schema updated" in capsys.readouterr().out
    assert main(["--write-spec", str(path)]) == 0
    assert "already up to date" in capsys.readouterr().out


def test_check_spec_fails_when_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _spec(tmp_path)
    assert main(["--check-spec", str(path)]) == 1
    assert "stale" in capsys.readouterr().err
    assert path.read_text().count("stale") == 1  # unchanged
    main(["--write-spec", str(path)])
    assert main(["--check-spec", str(path)]) == 0


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == contract_json_schema_text()


def test_cli_reports_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check-spec", str(tmp_path / "missing.md")]) == 2
    assert "missing.md" in capsys.readouterr().err


def test_cli_reports_missing_markers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "spec.md"
    path.write_text("no markers\n")
    assert main(["--write-spec", str(path)]) == 2
    assert "expected exactly one" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text",
    [
        "nothing here",
        f"{SCHEMA_BEGIN_MARKER}\n{SCHEMA_BEGIN_MARKER}\n{SCHEMA_END_MARKER}\n",
        f"{SCHEMA_END_MARKER}\n{SCHEMA_BEGIN_MARKER}\n",
        f"{SCHEMA_BEGIN_MARKER} trailing\n{SCHEMA_END_MARKER}\n",
    ],
)
def test_malformed_markers_are_rejected(text: str) -> None:
    with pytest.raises(SpecFormatError):
        update_spec_text(text)

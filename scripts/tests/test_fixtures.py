"""The shared test fixtures (.specify/test-fixtures) are real: the contract ones validated by
shared_utils.contract's models and by the JSON Schema specs/002-sts-contract.md publishes."""

from __future__ import annotations

import json
import sys
import wave
from pathlib import Path
from typing import Any

import pytest
from scaffold import REPO, TOOLS_VENV, package_venv_python, run, run_ok

FIXTURES = REPO / ".specify" / "test-fixtures"
VALID = sorted((FIXTURES / "contract" / "valid").glob("*.json"))
INVALID = sorted((FIXTURES / "contract" / "invalid").glob("*.json"))
SAMPLE_GENERATOR = FIXTURES / "audio" / "make_sample.py"
SPEC = REPO / "specs" / "002-sts-contract.md"

# Run in libs/shared-utils/.venv: the JSON Schema the spec publishes (read by the library's own
# extractor), the contract's model names, and each fixture validated by its model.
VALIDATE = """
import json, sys
from pydantic import ValidationError
from shared_utils.contract import CONTRACT_MODELS
from shared_utils.contract_cli import extract_schema_block
verdicts = {}
for model_name, path in zip(sys.argv[2::2], sys.argv[3::2]):
    text = open(path).read()
    try:
        model = CONTRACT_MODELS[model_name].model_validate_json(text)
    except ValidationError as exc:
        verdicts[path] = {"ok": False, "error": str(exc)}
    else:
        same = model.model_dump(mode="json") == json.loads(text)
        verdicts[path] = {"ok": True, "round_trip": same}
block = extract_schema_block(open(sys.argv[1]).read())
schema = json.loads(block.removeprefix("```json").removesuffix("```\\n"))
print(json.dumps({"models": sorted(CONTRACT_MODELS), "verdicts": verdicts, "schema": schema}))
"""


def model_for(path: Path) -> str:
    """The contract model a fixture is for, named by its first two words: process-request-*.json
    is for ProcessRequest (an unknown model fails the `contract` run with a KeyError)."""
    return "".join(word.title() for word in path.stem.split("-")[:2])


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    """The published schema, the model names and every fixture's verdict, from one run."""
    python = package_venv_python("libs/shared-utils")
    args = [item for path in VALID + INVALID for item in (model_for(path), str(path))]
    output = run_ok([str(python), "-c", VALIDATE, str(SPEC), *args], cwd=REPO)
    data: dict[str, Any] = json.loads(output.splitlines()[-1])
    return data


def test_valid_fixtures_validate_and_round_trip_with_the_models(contract: dict[str, Any]) -> None:
    for path in VALID:
        assert contract["verdicts"][str(path)] == {"ok": True, "round_trip": True}, path.name
    assert sorted({model_for(path) for path in VALID}) == contract["models"]  # one example each


EXPECTED_ERRORS = {
    "process-request-bad-base64.json": "data_base64 is not valid base64",
    "process-request-negative-sequence.json": "sequence_number",
    "process-request-unsupported-rate.json": "sample rate 12345 Hz is not supported",
    "process-request-timeout-too-long.json": "timeout_ms",
    "process-request-unknown-field.json": "priority",
    "process-response-failed-without-error.json": "status=failed needs an error",
}


def test_each_invalid_fixture_is_rejected_for_its_stated_reason(contract: dict[str, Any]) -> None:
    assert sorted(EXPECTED_ERRORS) == sorted(path.name for path in INVALID)
    for path in INVALID:
        verdict = contract["verdicts"][str(path)]
        assert verdict["ok"] is False, f"{path.name} was accepted"
        assert EXPECTED_ERRORS[path.name] in verdict["error"], path.name


NEGATIVE_SEQUENCE = FIXTURES / "contract" / "invalid" / "process-request-negative-sequence.json"


@pytest.mark.parametrize(
    ("paths", "status", "says"),
    [(VALID, 0, ""), ([NEGATIVE_SEQUENCE], 1, "sequence_number")],
    ids=["valid-fixtures-pass", "a-schema-level-violation-fails"],
)
def test_the_published_json_schema(
    contract: dict[str, Any], tmp_path: Path, paths: list[Path], status: int, says: str
) -> None:
    """check-jsonschema on the fixtures as one JSON array, each against its model's definition."""
    items = [{"$ref": f"#/$defs/{model_for(path)}"} for path in paths]
    schema = {**contract["schema"], "type": "array", "prefixItems": items, "items": False}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    instance = tmp_path / "fixtures.json"
    instance.write_text(json.dumps([json.loads(path.read_text()) for path in paths]))
    checker = str(TOOLS_VENV / "bin" / "check-jsonschema")

    result = run([checker, "--schemafile", str(tmp_path / "schema.json"), str(instance)], REPO)

    assert result.returncode == status, result.output
    assert says in result.output


# Run in libs/shared-audio/.venv: read the sample with the real library and measure it.
MEASURE = """
import json, sys
sys.path.insert(0, sys.argv[2])
from make_sample import speech_regions
from shared_audio import read_wav, is_speech, is_silent
fmt, samples = read_wav(sys.argv[1])
rate = fmt.sample_rate
regions = speech_regions(len(samples) / rate)
speech = [is_speech(samples[round(a * rate):round(b * rate)]) for a, b in regions]
gaps = [is_silent(samples[round(b * rate):round((a + 1) * rate)]) for a, b in regions]
print(json.dumps({"rate": rate, "channels": fmt.channels, "frames": len(samples),
                  "speech": speech, "gaps": gaps}))
"""


def test_audio_sample_is_deterministic_and_reads_with_shared_audio_as_described(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "a.wav", tmp_path / "b.wav"
    for target in (first, second):
        output = run_ok(
            [sys.executable, str(SAMPLE_GENERATOR), str(target), "--seconds", "3"], REPO
        )
        assert "48000 frames, 16000 Hz, 1 channel(s)" in output
    assert first.read_bytes() == second.read_bytes()
    with wave.open(str(first), "rb") as wav:
        assert wav.getsampwidth() == 2  # 16-bit PCM
    python = package_venv_python("libs/shared-audio")

    output = run_ok([str(python), "-c", MEASURE, str(first), str(SAMPLE_GENERATOR.parent)], REPO)

    measured = json.loads(output.splitlines()[-1])
    assert measured == {
        "rate": 16000,
        "channels": 1,
        "frames": 48000,
        "speech": [True, True, True],
        "gaps": [True, True, True],
    }


def test_audio_sample_generator_rejects_a_bad_length(tmp_path: Path) -> None:
    result = run(
        [sys.executable, str(SAMPLE_GENERATOR), str(tmp_path / "x.wav"), "--seconds", "0"], REPO
    )

    assert result.returncode == 2
    assert "--seconds must be in (0, 600]" in result.output

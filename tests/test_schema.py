"""Native RealStreamEval JSONL: validation errors name the file, line and field."""

import json
import re
from pathlib import Path

import pytest

from evostreaming.eval.schema import SampleFormatError, json_schema, load_samples

GOOD = {
    "id": "a",
    "video": "v.mp4",
    "task": "REC",
    "regime": "FAR",
    "turns": [{"time": 0, "text": "count"}],
    "answers": [{"time": 4.0, "evidence_start": 2, "answer": "1", "judge": "number"}],
}


def _write(tmp_path, rows):
    p = tmp_path / "samples.jsonl"
    p.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return p


def test_loads_valid_lines_and_folders(tmp_path):
    p = _write(tmp_path, [GOOD, {**GOOD, "id": "b", "fps": 1.0}])
    samples = load_samples(p)
    assert [s.id for s in samples] == ["a", "b"]
    assert samples[0].fps == 0.5 and samples[1].fps == 1.0
    assert samples[0].evidence_time() == 2.0
    assert len(load_samples(tmp_path)) == 2  # a folder means its samples.jsonl


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**GOOD, "regime": "LIVE"}, r":2: field 'regime'"),
        ({**GOOD, "answers": [{"time": 1, "answer": "x", "judge": "fuzzy"}]}, r":2: field 'answers.0.judge'"),
        ({k: v for k, v in GOOD.items() if k != "turns"}, r":2: field 'turns': Field required"),
        ({**GOOD, "answers": [{"time": 1, "evidence_start": 5, "answer": "x"}]}, r":2: field 'answers.0'"),
        ({**GOOD, "colour": "red"}, r":2: field 'colour'"),
        ({**GOOD, "id": "a"}, r":2: field 'id': duplicate"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, row, message):
    p = _write(tmp_path, [GOOD, row])
    with pytest.raises(SampleFormatError, match=re.escape(str(p)) + message):
        load_samples(p)


def test_bad_json_line(tmp_path):
    p = _write(tmp_path, [GOOD, "{oops"])
    with pytest.raises(SampleFormatError, match=r"samples.jsonl:2: not valid JSON"):
        load_samples(p)


def test_documented_schema_matches_the_code():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "realstreameval-format.md").read_text()
    block = doc.split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(block) == json_schema()

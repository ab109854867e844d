"""``evostreaming models``: the family table read from the registry, and the exactness check behind
``--check``, which must catch a broken adapter."""

import json

from typer.testing import CliRunner

from evostreaming.cli import app
from evostreaming.models import family_names
from evostreaming.models.tiny import build_tiny
from evostreaming.stream.exactness import check_exactness


def test_models_lists_every_registered_family_with_its_class_and_memory(tmp_path):
    out = tmp_path / "models.json"
    res = CliRunner().invoke(app, ["models", "--check", "--json", str(out)], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    rows = {r["family"]: r for r in json.loads(out.read_text())}
    assert sorted(rows) == family_names() and len(rows) >= 14
    assert rows["qwen3_5"]["transformers_class"] == "Qwen3_5ForConditionalGeneration"
    assert "linear-attention state kept" in rows["qwen3_5"]["memory"]
    assert rows["llava"]["adapter"] == "standard (no code)"
    assert len(rows["qwen2_5_vl"]["real_twins"]) == 2
    assert all(r["exact"] and r["max_abs_diff"] <= 1e-4 for r in rows.values())


def test_the_exactness_check_catches_positions_off_by_one(monkeypatch):
    from evostreaming.models.families.internvl import InternVLAdapter

    tm = build_tiny("internvl")
    assert check_exactness(tm.model, tm.processor).passed()
    original = InternVLAdapter.positions

    def shifted(self, model, segment, start):
        return original(self, model, segment, start + 1)  # every segment one position too far

    monkeypatch.setattr(InternVLAdapter, "positions", shifted)
    assert not check_exactness(tm.model, tm.processor).passed()

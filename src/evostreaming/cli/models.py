"""``evostreaming models``: every supported family, read from the family registry."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from evostreaming.cli.common import check_json_out, console


def family_rows(check: bool = False) -> list[dict]:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as CLASSES

    from evostreaming.models.adapter import StandardAdapter
    from evostreaming.models.family import FAMILIES
    from evostreaming.models.real.table import REAL_CHECKPOINTS

    rows = []
    for name, fam in FAMILIES.items():
        a = fam.adapter
        row = {
            "family": name,
            "model_types": list(fam.model_types),
            "transformers_class": ", ".join(CLASSES.get(t, "?") for t in fam.model_types),
            "positions": {"mrope": "M-RoPE (t, h, w)", "1d": "1D RoPE"}.get(a.positions_scheme, a.positions_scheme),
            "memory": (
                "bounded: frames evicted from full-attention layers, keys re-rotated; linear-attention state kept"
                if a.hybrid_memory
                else "bounded: frames evicted, keys re-rotated"
            ),
            "adapter": "standard (no code)" if issubclass(a, StandardAdapter) else "family file",
            "real_twins": [c for c, e in REAL_CHECKPOINTS.items() if e.family == name],
        }
        if check:
            from evostreaming.models.tiny import build_tiny
            from evostreaming.stream.exactness import check_exactness

            tm = build_tiny(name)
            result = check_exactness(tm.model, tm.processor)
            row["exact"] = result.passed()
            row["max_abs_diff"] = result.max_abs_diff
            row["check_seconds"] = round(result.seconds, 2)
        rows.append(row)
    return rows


def models(
    check: bool = typer.Option(False, help="run each family's exactness check on its tiny twin, here"),
    json_out: Path | None = typer.Option(None, "--json", help="also write the table as JSON"),
) -> None:
    """List every supported model family: transformers class, positions, memory, exactness."""
    from rich.table import Table

    if json_out:
        check_json_out(json_out)  # before --check's minutes of exactness runs
    rows = family_rows(check)
    table = Table(title=f"{len(rows)} supported model families (docs/streaming.md)")
    for col in ("family", "transformers class", "positions", "memory", "adapter", "real twins", "exact here"):
        table.add_column(col, overflow="fold")
    for r in rows:
        exact = "run with --check"
        if "exact" in r:
            exact = f"{'pass' if r['exact'] else 'FAIL'} (max |Δ| {r['max_abs_diff']:.1e}, {r['check_seconds']} s)"
        table.add_row(
            r["family"],
            r["transformers_class"],
            r["positions"],
            r["memory"],
            r["adapter"],
            str(len(r["real_twins"])),
            exact,
        )
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(rows, indent=1))
    if check and not all(r["exact"] for r in rows):
        raise typer.Exit(1)

"""OVO-Bench's original (offline, "multiple triggering") scoring, for comparability.

Rules, as in OVO-Bench's released scorer:
* backward / real-time multiple choice: correct iff the ground-truth letter is a substring of
  the response;
* REC: all digits of the response concatenated equal the gold count;
* SSR / CRR: a response of exactly "Y"/"N" matching the probe type, or the gold "Yes"/"No" as a
  substring of the response;
* task score = mean over its items; category score = mean of its tasks;
  overall = mean of the three categories. Reported x100.

Some released prediction files hold a list instead of a string in ``response``; the elements
are joined with spaces (so a letter or a digit anywhere in the list is seen).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

CATEGORIES = {"backward": "backward", "realtime": "realtime", "forward": "forward"}


class OVOPredictionError(ValueError):
    pass


def _text(response) -> str | None:
    if response is None:
        return None
    if isinstance(response, list):
        return " ".join(str(r) for r in response if r is not None)
    return str(response)


def score_mcq(response, gt: str) -> int:
    text = _text(response)
    return 0 if text is None else int(str(gt) in text)


def score_rec(response, count) -> int:
    text = _text(response)
    if text is None:
        return 0
    return int("".join(re.findall(r"\d+", text)) == str(count))


def score_yes_no(response, probe_type: int) -> int:
    text = _text(response)
    if text is None:
        return 0
    if (text == "N" and probe_type == 0) or (text == "Y" and probe_type == 1):
        return 1
    return int(("No" if probe_type == 0 else "Yes") in text)


def load_predictions(folder: Path) -> dict[str, list[dict]]:
    """Merge every ``*.json`` prediction file in ``folder`` into {category: [rows]}."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise OVOPredictionError(f"{folder}: no *.json prediction files found")
    merged: dict[str, list[dict]] = defaultdict(list)
    for f in files:
        try:
            data = json.loads(f.read_text())
        except json.JSONDecodeError as exc:
            raise OVOPredictionError(f"{f}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
        if not isinstance(data, dict) or not set(data) & set(CATEGORIES):
            raise OVOPredictionError(f"{f}: expected an object with 'backward', 'realtime' and/or 'forward' lists")
        for cat in CATEGORIES:
            rows = data.get(cat, [])
            for i, row in enumerate(rows):
                _check_row(row, f"{f}: {cat}[{i}]", forward=cat == "forward")
            merged[cat].extend(rows)
    return merged


def _check_row(row, where: str, forward: bool) -> None:
    """A prediction row has what its scoring rule reads; else an error naming file, row and field."""
    if not isinstance(row, dict):
        raise OVOPredictionError(f"{where}: not an object")
    where = f"{where} (id {row.get('id')})"
    needed = ("id", "task", "test_info") if forward else ("id", "task", "ground_truth")
    for field in needed:
        if field not in row:
            raise OVOPredictionError(f"{where}: field '{field}' is missing")
    if not forward:
        return
    probe_field = "count" if row["task"] == "REC" else "type"
    for j, probe in enumerate(row["test_info"]):
        if not isinstance(probe, dict) or probe_field not in probe:
            raise OVOPredictionError(f"{where}: field 'test_info[{j}].{probe_field}' is missing")


def score_predictions(preds: dict[str, list[dict]]) -> dict:
    tasks: dict[str, list[int]] = defaultdict(list)
    category_of: dict[str, str] = {}
    for cat in ("backward", "realtime"):
        for row in preds.get(cat, []):
            tasks[row["task"]].append(score_mcq(row.get("response"), row["ground_truth"]))
            category_of[row["task"]] = cat
    for row in preds.get("forward", []):
        task = row["task"]
        category_of[task] = "forward"
        for probe in row["test_info"]:
            if task == "REC":
                tasks[task].append(score_rec(probe.get("response"), probe["count"]))
            elif task in ("SSR", "CRR"):
                tasks[task].append(score_yes_no(probe.get("response"), probe["type"]))
            else:
                raise OVOPredictionError(f"unknown forward task {task!r} (row id {row.get('id')})")
    task_scores = {t: 100.0 * sum(v) / len(v) for t, v in sorted(tasks.items()) if v}
    categories = {}
    for cat in CATEGORIES:
        vals = [s for t, s in task_scores.items() if category_of[t] == cat]
        if vals:
            categories[cat] = sum(vals) / len(vals)
    overall = sum(categories.values()) / len(categories) if categories else 0.0
    return {
        "overall": overall,
        "categories": categories,
        "tasks": task_scores,
        "counts": {t: len(v) for t, v in sorted(tasks.items())},
    }


def check_against_annotations(preds: dict[str, list[dict]], annotations: Path) -> dict[str, dict[str, int]]:
    """Per task: annotated rows, predicted rows. Raises if a prediction names an unknown id or
    disagrees with the annotation's ground truth (a sign of a mismatched annotation file)."""
    annotations = Path(annotations)
    try:
        rows = json.loads(annotations.read_text())
    except json.JSONDecodeError as exc:
        raise OVOPredictionError(f"{annotations}: line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    for i, r in enumerate(rows):
        gt, n = r.get("gt"), len(r.get("options") or [])
        if gt is not None and n and (isinstance(gt, bool) or not isinstance(gt, int) or not 0 <= gt < n):
            raise OVOPredictionError(
                f"{annotations}: row {i} (id {r.get('id')}): field 'gt' {gt!r} is not in 0..{n - 1}"
            )
    by_id = {r["id"]: r for r in rows}
    coverage: dict[str, dict[str, int]] = defaultdict(lambda: {"annotated": 0, "predicted": 0})
    for r in rows:
        coverage[r["task"]]["annotated"] += 1
    for cat, items in preds.items():
        for row in items:
            ann = by_id.get(row["id"])
            if ann is None:
                raise OVOPredictionError(f"prediction id {row['id']} ({cat}) is not in {annotations}")
            if "gt" in ann and row.get("ground_truth", chr(ord("A") + ann["gt"])) != chr(ord("A") + ann["gt"]):
                raise OVOPredictionError(
                    f"prediction id {row['id']}: ground_truth {row['ground_truth']!r} disagrees with "
                    f"{annotations} (gt={ann['gt']}); are these predictions for another edition?"
                )
            coverage[row["task"]]["predicted"] += 1
    return dict(sorted(coverage.items()))


def missing_tasks(coverage: dict[str, dict[str, int]]) -> list[str]:
    """Annotated tasks without a single prediction (a category's files left out)."""
    return [t for t, c in coverage.items() if c["annotated"] and not c["predicted"]]


def score_files(annotations: Path, predictions: Path, allow_missing: bool = False) -> dict:
    """OVO-Bench's original scores of a predictions folder against its annotations, with the coverage
    (``OVOPredictionError`` for a bad file, or for whole tasks missing unless ``allow_missing``)."""
    for path in (annotations, predictions):
        if not Path(path).exists():
            raise OVOPredictionError(f"{path}: no such file or folder")
    preds = load_predictions(predictions)
    coverage = check_against_annotations(preds, annotations)
    result = score_predictions(preds)
    missing = missing_tasks(coverage)
    if missing and not allow_missing:
        raise OVOPredictionError(
            f"{predictions}: no predictions for task(s) {', '.join(missing)} of {annotations}, so an overall would "
            "cover only part of OVO-Bench; add their files, or pass --allow-missing to score the rest"
        )
    result["coverage"] = coverage
    result["missing_tasks"] = missing
    return result

"""Zoo specs: one YAML file lists the candidate models and where each one's results come from.

Paths inside a spec resolve relative to the spec file, so a spec and its data can move together.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

import numpy as np
import yaml

from .errors import DataError, SpecError
from .registry import Registry

logger = logging.getLogger(__name__)

MODALITIES = ("text", "vision-language")

RESULT_SOURCE_REGISTRY: Registry[type["ResultSource"]] = Registry("result source")


@dataclass(frozen=True)
class Question:
    """One question of a benchmark, as stored in a ``queries.jsonl`` line."""

    query_id: str
    text: str
    dataset: str = ""
    category: str = ""
    subject: str = ""
    choices: tuple[str, ...] = ()
    answer: str = ""
    image: str | None = None


@dataclass
class Candidate:
    name: str
    modality: str
    metadata: dict[str, Any]
    source: "ResultSource"


@dataclass
class Zoo:
    """A parsed zoo spec: candidates plus the question bank their recorded results cover."""

    name: str
    spec_path: Path
    candidates: list[Candidate]
    questions: list[Question] = field(default_factory=list)
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [question, candidate], NaN = missing

    @property
    def candidate_names(self) -> list[str]:
        return [c.name for c in self.candidates]


class ResultSource:
    """Where a candidate's per-question results come from. Subclasses register under a ``type`` name."""

    def __init__(self, spec_path: Path, candidate: str, options: dict[str, Any], default_scores: Path | None = None):
        self.spec_path, self.candidate, self.options = spec_path, candidate, options

    def load(self, question_ids: list[str], tables: dict[Path, dict]) -> np.ndarray:
        """Scores in [0, 1] for each question id, NaN where the candidate was not evaluated.

        ``tables`` is a per-load cache that sources may share (several candidates read one wide file).
        """
        raise NotImplementedError


@RESULT_SOURCE_REGISTRY.register("recorded")
class RecordedResults(ResultSource):
    """Results already measured: one column of a wide ``scores.csv`` (query_id, then one column per model)."""

    def __init__(self, spec_path: Path, candidate: str, options: dict[str, Any], default_scores: Path | None):
        super().__init__(spec_path, candidate, options, default_scores)
        field_prefix = f"candidates[{candidate}].results"
        if "scores" in options:
            self.scores_path = _existing_file(spec_path, options["scores"], f"{field_prefix}.scores")
        elif default_scores is not None:
            self.scores_path = default_scores
        else:
            raise SpecError(spec_path, f"{field_prefix}.scores", "no scores file given",
                            "set a top-level 'scores:' path or 'scores:' under this candidate's results")
        self.column = str(options.get("column", candidate))
        header = _csv_header(self.scores_path)
        if self.column not in header[1:]:
            raise SpecError(spec_path, f"{field_prefix}.column",
                            f"column {self.column!r} is not in {self.scores_path}",
                            f"use one of: {', '.join(header[1:])}")

    def load(self, question_ids: list[str], tables: dict[Path, dict]) -> np.ndarray:
        if self.scores_path not in tables:
            tables[self.scores_path] = _read_scores(self.scores_path)
        table = tables[self.scores_path]
        column = table["columns"].index(self.column)
        rows = table["rows"]
        out = np.full(len(question_ids), np.nan, dtype=np.float32)
        for i, qid in enumerate(question_ids):
            values = rows.get(qid)
            if values is not None:
                out[i] = values[column]
        return out


@contextmanager
def _open_utf8(path: Path, newline: str | None = None) -> Iterator[TextIO]:
    """Open a data file as UTF-8 text; a bad byte, wherever reading meets it, is a DataError naming the file."""
    with open(path, newline=newline, encoding="utf-8") as handle:
        try:
            yield handle
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not UTF-8 text (byte {error.start}: {error.reason}); "
                            "save the file as UTF-8") from error


def _csv_header(path: Path) -> list[str]:
    with _open_utf8(path, newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header or len(header) < 2:
        raise DataError(f"{path}: the scores file is empty or has no model columns; "
                        "its first line must be 'query_id,MODEL_A,MODEL_B,...'")
    return header


def _read_scores(path: Path) -> dict:
    with _open_utf8(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = {}
        for line_number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{line_number}: {len(row)} cells, the header has {len(header)}; "
                                "give every row a query_id and one cell per model (empty = not evaluated)")
            values = []
            for cell in row[1:]:
                try:
                    value = float(cell) if cell.strip() else math.nan
                except ValueError:
                    raise DataError(f"{path}:{line_number}: score {cell!r} is not a number; "
                                    "use a value in [0, 1] or leave the cell empty (= not evaluated)") from None
                if not math.isnan(value) and not 0.0 <= value <= 1.0:
                    raise DataError(f"{path}:{line_number}: score {value} is outside [0, 1]; "
                                    "scores are 1 = right, 0 = wrong (or a fraction); leave the cell empty if unknown")
                values.append(value)
            rows[row[0]] = values
    return {"columns": header[1:], "rows": rows}


def _existing_file(spec_path: Path, value: Any, field_name: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(spec_path, field_name, f"expected a file path, got {value!r}", "give a path relative to the spec file")
    path = (spec_path.parent / value).resolve()
    if not path.is_file():
        raise SpecError(spec_path, field_name, f"file {path} does not exist",
                        "fix the path (it is relative to the spec file's folder)")
    return path


def read_questions(path: Path) -> list[Question]:
    questions = []
    with _open_utf8(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                questions.append(Question(
                    query_id=str(row["query_id"]), text=str(row["question"]), dataset=row.get("dataset", ""),
                    category=row.get("category") or "", subject=row.get("subject") or "",
                    choices=tuple(row.get("choices") or ()), answer=str(row.get("answer") or ""),
                    image=row.get("image"),
                ))
            except (json.JSONDecodeError, KeyError, AttributeError, TypeError) as error:
                raise DataError(f"{path}:{line_number}: not a question line ({error}); "
                                "each line needs at least 'query_id' and 'question'") from error
    return questions


def load_zoo(spec_path: str | Path) -> Zoo:
    """Parse and validate a zoo spec, then load every candidate's recorded results."""
    spec_path = Path(spec_path)
    if not spec_path.is_file():
        raise SpecError(spec_path, "(file)", "the zoo spec does not exist", "check the path, or list zoo_specs/ for shipped zoos")
    try:
        raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SpecError(spec_path, "(yaml)", f"not valid YAML ({error})", "fix the YAML syntax") from error
    if not isinstance(raw, dict):
        raise SpecError(spec_path, "(top level)", "expected a mapping", "start the file with 'name:' and 'candidates:'")

    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise SpecError(spec_path, "name", "missing or not a string", "add 'name: my_zoo'")
    questions_path = _existing_file(spec_path, raw["questions"], "questions") if "questions" in raw else None
    default_scores = _existing_file(spec_path, raw["scores"], "scores") if "scores" in raw else None
    metadata_defaults: dict[str, Any] = {}
    if "models" in raw:
        models_path = _existing_file(spec_path, raw["models"], "models")
        try:
            metadata_defaults = json.loads(models_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SpecError(spec_path, "models", f"{models_path} is not valid JSON ({error})",
                            "fix the file, or drop the 'models:' line (metadata is optional)") from error
        if not isinstance(metadata_defaults, dict) or not all(isinstance(v, dict) for v in metadata_defaults.values()):
            raise SpecError(spec_path, "models", f"{models_path} is not a JSON object of model name -> metadata",
                            'write {"MODEL_COLUMN": {"params_b": 7, "released": "2024-07"}, ...}')

    entries = raw.get("candidates")
    if not isinstance(entries, list) or not entries:
        raise SpecError(spec_path, "candidates", "missing or empty", "list at least one candidate with 'name:' and 'results:'")
    candidates: list[Candidate] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"candidates[{index}]"
        if not isinstance(entry, dict):
            raise SpecError(spec_path, where, f"expected a mapping, got {entry!r}", "write '- name: ...' entries")
        cname = entry.get("name")
        if not isinstance(cname, str) or not cname:
            raise SpecError(spec_path, f"{where}.name", "missing", "give every candidate a unique 'name:'")
        if cname in seen:
            raise SpecError(spec_path, f"{where}.name", f"duplicate candidate name {cname!r}", "give every candidate a unique name")
        seen.add(cname)
        modality = entry.get("modality", "text")
        if modality not in MODALITIES:
            raise SpecError(spec_path, f"{where}.modality", f"unknown modality {modality!r}", f"use one of {', '.join(MODALITIES)}")
        results = entry.get("results")
        if not isinstance(results, dict) or "type" not in results:
            raise SpecError(spec_path, f"{where}.results", "missing or has no 'type'",
                            f"add 'results: {{type: recorded, column: {cname}}}'")
        source_type = results["type"]
        if source_type not in RESULT_SOURCE_REGISTRY:
            raise SpecError(spec_path, f"{where}.results.type", f"unknown result source {source_type!r}",
                            f"use one of: {', '.join(RESULT_SOURCE_REGISTRY.names())}")
        source_cls = RESULT_SOURCE_REGISTRY.get(source_type)
        options = {k: v for k, v in results.items() if k != "type"}
        source = source_cls(spec_path, cname, options, default_scores)
        metadata = dict(metadata_defaults.get(str(options.get("column", cname)), {}))
        extra = entry.get("metadata") or {}
        if not isinstance(extra, dict):
            raise SpecError(spec_path, f"{where}.metadata", "expected a mapping", "write e.g. 'metadata: {params_b: 7}'")
        metadata.update(extra)
        candidates.append(Candidate(name=cname, modality=modality, metadata=metadata, source=source))

    zoo = Zoo(name=name, spec_path=spec_path.resolve(), candidates=candidates)
    if questions_path is not None:
        zoo.questions = read_questions(questions_path)
        ids = [q.query_id for q in zoo.questions]
        tables: dict[Path, dict] = {}
        zoo.scores = np.stack([c.source.load(ids, tables) for c in candidates], axis=1)
        logger.info("zoo %s: %d candidates, %d questions", name, len(candidates), len(ids))
    return zoo

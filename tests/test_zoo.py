"""Zoo spec parsing: shipped specs, relative paths, and every kind of bad spec naming file, field and fix."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import ZOO_SPECS
from mmrouter.errors import DataError, SpecError
from mmrouter.zoo import RESULT_SOURCE_REGISTRY, load_zoo

MMLU = ZOO_SPECS.parent / "data" / "mmlu_pro"


def _csv_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    return rows if limit is None else rows[:limit + 1]


# -- shipped specs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, n_candidates", [("mmlu_pro_small", 5), ("mmlu_pro_all", 24), ("llmrouter_9", 9),
                                                ("mmlu_pro_mixed", 9)])
def test_shipped_specs_load(spec, n_candidates, small_zoo):
    zoo = small_zoo if spec == "mmlu_pro_small" else load_zoo(ZOO_SPECS / f"{spec}.yaml")
    assert zoo.name == spec
    assert len(zoo.candidates) == n_candidates
    assert len(set(zoo.candidate_names)) == n_candidates
    assert zoo.scores.shape == (len(zoo.questions), n_candidates)
    assert len(zoo.questions) > 1000
    finite = zoo.scores[~np.isnan(zoo.scores)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0
    assert all(c.modality == "text" for c in zoo.candidates)
    assert zoo.spec_path == (ZOO_SPECS / f"{spec}.yaml").resolve()


def test_small_zoo_scores_match_csv(small_zoo):
    rows = _csv_rows(MMLU / "scores.csv")
    header, body = rows[0], {r[0]: r[1:] for r in rows[1:]}
    ids = [q.query_id for q in small_zoo.questions]
    assert len(ids) == 12032 and len(set(ids)) == len(ids)
    for qid in ("mmlu_pro/70", "mmlu_pro/71", ids[-1], ids[len(ids) // 2]):
        row = ids.index(qid)
        for n, name in enumerate(small_zoo.candidate_names):
            assert small_zoo.scores[row, n] == float(body[qid][header.index(name) - 1])
    first = small_zoo.questions[ids.index("mmlu_pro/70")]
    assert first.subject == "ori_mmlu-business_ethics" and first.category == "business"
    assert len(first.choices) == 9 and first.answer == "I"
    assert first.choices[8] == "Unsafe practices, Distress, Fear, Serious"


def test_metadata_merged_from_models_json(small_zoo):
    meta = {c.name: c.metadata for c in small_zoo.candidates}
    assert meta["Meta-Llama-3.1-8B-Instruct"]["params_b"] == 8
    assert meta["gemma-7b"]["params_b"] == 8.5
    assert meta["mathstral-7B"]["family"] == "mistral"
    llmrouter = load_zoo(ZOO_SPECS / "llmrouter_9.yaml")
    expected = json.loads((ZOO_SPECS.parent / "data" / "llmrouter" / "models.json").read_text())
    for candidate in llmrouter.candidates:
        assert candidate.metadata == expected[candidate.name]


def test_mmlu_pro_all_has_missing_results_as_nan():
    zoo = load_zoo(ZOO_SPECS / "mmlu_pro_all.yaml")
    missing = np.isnan(zoo.scores)
    assert missing.any()
    rows = _csv_rows(MMLU / "scores.csv")
    header, body = rows[0], {r[0]: r[1:] for r in rows[1:]}
    row, col = map(int, np.argwhere(missing)[0])
    qid, name = zoo.questions[row].query_id, zoo.candidate_names[col]
    assert body[qid][header.index(name) - 1].strip() == ""


def test_recorded_source_is_registered():
    assert "recorded" in RESULT_SOURCE_REGISTRY


# -- a spec in a temporary folder, next to a small copy of the data --------------------------------------------------
N_SUBSET = 30


@pytest.fixture
def data_copy(tmp_path) -> Path:
    """tmp/data/{queries.jsonl,scores.csv,models.json}: the first N_SUBSET MMLU-Pro questions."""
    data = tmp_path / "data"
    data.mkdir()
    with open(MMLU / "queries.jsonl", encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(N_SUBSET)]
    (data / "queries.jsonl").write_text("".join(lines), encoding="utf-8")
    with open(data / "scores.csv", "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(_csv_rows(MMLU / "scores.csv", N_SUBSET))
    (data / "models.json").write_text((MMLU / "models.json").read_text(encoding="utf-8"), encoding="utf-8")
    return data


GOOD_SPEC = """\
name: tiny
questions: ../data/queries.jsonl
scores: ../data/scores.csv
models: ../data/models.json
candidates:
  - name: llama
    results: {type: recorded, column: Meta-Llama-3.1-8B-Instruct}
  - name: gemma-7b
    modality: text
    results: {type: recorded}
    metadata: {params_b: 99, note: hi}
"""


def write_spec(tmp_path: Path, text: str, name: str = "zoo.yaml") -> Path:
    folder = tmp_path / "specs"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_spec_paths_resolve_relative_to_spec_file(tmp_path, data_copy, small_zoo, monkeypatch):
    spec = write_spec(tmp_path, GOOD_SPEC)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must not depend on the current folder
    zoo = load_zoo(spec)
    assert zoo.name == "tiny"
    assert zoo.candidate_names == ["llama", "gemma-7b"]
    assert len(zoo.questions) == N_SUBSET
    assert zoo.scores.shape == (N_SUBSET, 2)
    big = {name: small_zoo.scores[:N_SUBSET, n] for n, name in enumerate(small_zoo.candidate_names)}
    np.testing.assert_array_equal(zoo.scores[:, 0], big["Meta-Llama-3.1-8B-Instruct"])
    np.testing.assert_array_equal(zoo.scores[:, 1], big["gemma-7b"])
    # metadata: models.json entry of the column, then the spec's own metadata on top
    assert zoo.candidates[0].metadata["params_b"] == 8
    assert zoo.candidates[1].metadata["params_b"] == 99
    assert zoo.candidates[1].metadata["note"] == "hi"
    assert zoo.candidates[1].metadata["family"] == "gemma"


def test_per_candidate_scores_file_and_missing_rows_are_nan(tmp_path, data_copy):
    rows = _csv_rows(data_copy / "scores.csv")
    header = rows[0]
    column = header.index("gemma-7b")
    # second file: only the first 10 questions, one empty cell, renamed column
    with open(data_copy / "other.csv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["query_id", "mine"])
        for i, row in enumerate(rows[1:11]):
            writer.writerow([row[0], "" if i == 3 else row[column]])
    spec = write_spec(tmp_path, """\
name: two_files
questions: ../data/queries.jsonl
candidates:
  - name: mine
    results: {type: recorded, scores: ../data/other.csv}
  - name: theirs
    results: {type: recorded, scores: ../data/scores.csv, column: gemma-7b}
""")
    zoo = load_zoo(spec)
    mine, theirs = zoo.scores[:, 0], zoo.scores[:, 1]
    assert np.isnan(mine[3]) and np.isnan(mine[10:]).all()
    keep = [i for i in range(10) if i != 3]
    np.testing.assert_array_equal(mine[keep], theirs[keep])
    assert not np.isnan(theirs).any()
    assert zoo.candidates[0].metadata == {}


def test_spec_without_questions_has_no_scores(tmp_path, data_copy):
    spec = write_spec(tmp_path, "name: q\nscores: ../data/scores.csv\ncandidates:\n  - name: gemma-7b\n    results: {type: recorded}\n")
    zoo = load_zoo(spec)
    assert zoo.questions == [] and zoo.scores.shape == (0, 0)
    assert zoo.candidate_names == ["gemma-7b"]


# -- bad specs: the error names the file, the field and the fix ------------------------------------------------------
CANDIDATE = "  - name: gemma-7b\n    results: {type: recorded}\n"
HEAD = "name: bad\nquestions: ../data/queries.jsonl\nscores: ../data/scores.csv\n"


@pytest.mark.parametrize("text, field, problem, fix", [
    ("name: [unclosed\ncandidates: {", "(yaml)", "not valid YAML", "fix the YAML syntax"),
    ("- just\n- a list\n", "(top level)", "expected a mapping", "name:"),
    ("questions: ../data/queries.jsonl\ncandidates:\n" + CANDIDATE, "name", "missing", "add 'name: my_zoo'"),
    (HEAD, "candidates", "missing or empty", "list at least one candidate"),
    (HEAD + "candidates: []\n", "candidates", "missing or empty", "list at least one candidate"),
    (HEAD + "candidates:\n  - name: gemma-7b\n", "candidates[0].results", "no 'type'",
     "results: {type: recorded, column: gemma-7b}"),
    (HEAD + "candidates:\n  - name: gemma-7b\n    results: {column: gemma-7b}\n", "candidates[0].results", "no 'type'",
     "type: recorded"),
    (HEAD + "candidates:\n  - name: gemma-7b\n    results: {type: live_api}\n", "candidates[0].results.type",
     "unknown result source 'live_api'", "use one of: recorded"),
    (HEAD + "candidates:\n  - name: x\n    results: {type: recorded, column: GPT-9}\n", "candidates[x].results.column",
     "column 'GPT-9' is not in", "use one of: DeepSeek-Coder-V2"),
    (HEAD + "candidates:\n  - name: GPT-9\n    results: {type: recorded}\n", "candidates[GPT-9].results.column",
     "column 'GPT-9'", "Meta-Llama-3.1-8B-Instruct"),
    (HEAD + "candidates:\n" + CANDIDATE + CANDIDATE, "candidates[1].name", "duplicate candidate name 'gemma-7b'",
     "unique name"),
    ("name: bad\nquestions: ../data/queries.jsonl\nscores: ../data/nope.csv\ncandidates:\n" + CANDIDATE, "scores",
     "does not exist", "relative to the spec file"),
    ("name: bad\nquestions: ../data/nope.jsonl\nscores: ../data/scores.csv\ncandidates:\n" + CANDIDATE, "questions",
     "does not exist", "relative to the spec file"),
    (HEAD + "candidates:\n  - name: m\n    results: {type: recorded, scores: missing.csv, column: gemma-7b}\n",
     "candidates[m].results.scores", "does not exist", "relative to the spec file"),
    ("name: bad\nquestions: ../data/queries.jsonl\ncandidates:\n" + CANDIDATE, "candidates[gemma-7b].results.scores",
     "no scores file given", "top-level 'scores:'"),
    (HEAD + "candidates:\n  - name: gemma-7b\n    modality: audio\n    results: {type: recorded}\n",
     "candidates[0].modality", "unknown modality 'audio'", "text, vision-language"),
    (HEAD + "candidates:\n  - name: ''\n    results: {type: recorded}\n", "candidates[0].name", "missing", "unique 'name:'"),
    (HEAD + "candidates:\n  - gemma-7b\n", "candidates[0]", "expected a mapping", "- name: ..."),
    (HEAD + "candidates:\n  - name: gemma-7b\n    results: {type: recorded}\n    metadata: [1, 2]\n",
     "candidates[0].metadata", "expected a mapping", "metadata: {params_b: 7}"),
], ids=["malformed-yaml", "not-a-mapping", "missing-name", "missing-candidates", "empty-candidates",
        "candidate-without-results", "results-without-type", "unknown-result-type", "unknown-column",
        "candidate-name-not-a-column", "duplicate-candidate", "missing-scores-file", "missing-questions-file",
        "missing-candidate-scores-file", "no-scores-anywhere", "unknown-modality", "empty-candidate-name",
        "candidate-not-a-mapping", "metadata-not-a-mapping"])
def test_bad_spec_error_names_file_field_and_fix(tmp_path, data_copy, text, field, problem, fix):
    spec = write_spec(tmp_path, text, name="broken_spec.yaml")
    with pytest.raises(SpecError) as caught:
        load_zoo(spec)
    error = caught.value
    message = str(error)
    assert str(spec) in message, message
    assert f"field {field!r}" in message, message
    assert error.field == field
    assert Path(error.path) == spec
    assert problem in message, message
    assert "Fix:" in message and fix in message, message


def test_missing_spec_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError, match="does not exist") as caught:
        load_zoo(tmp_path / "no_such_zoo.yaml")
    assert "no_such_zoo.yaml" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("cell, problem", [("abc", "is not a number"), ("1.5", r"outside \[0, 1\]")])
def test_bad_score_cell_names_file_and_line(tmp_path, data_copy, cell, problem):
    rows = _csv_rows(data_copy / "scores.csv")
    rows[4][rows[0].index("gemma-7b")] = cell
    with open(data_copy / "scores.csv", "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    spec = write_spec(tmp_path, HEAD + "candidates:\n" + CANDIDATE)
    with pytest.raises(ValueError, match=problem) as caught:
        load_zoo(spec)
    assert "scores.csv:5" in str(caught.value)


def test_bad_score_cell_is_a_user_error_in_the_cli(tmp_path, data_copy, capsys):
    from mmrouter.cli import main
    from mmrouter.errors import DataError

    rows = _csv_rows(data_copy / "scores.csv")
    rows[2][rows[0].index("gemma-7b")] = "3"
    with open(data_copy / "scores.csv", "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    spec = write_spec(tmp_path, HEAD + "candidates:\n" + CANDIDATE)
    with pytest.raises(DataError):
        load_zoo(spec)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: bad\nzoo: {spec}\n", encoding="utf-8")
    assert main(["run", str(recipe), f"output_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "scores.csv:3" in err and "outside [0, 1]" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_ragged_or_empty_scores_file(tmp_path, data_copy):
    rows = _csv_rows(data_copy / "scores.csv")
    rows[3] = rows[3][:2]
    with open(data_copy / "scores.csv", "w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows(rows)
    spec = write_spec(tmp_path, HEAD + "candidates:\n" + CANDIDATE)
    with pytest.raises(ValueError, match="scores.csv:4: 2 cells"):
        load_zoo(spec)
    (data_copy / "scores.csv").write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="empty or has no model columns"):
        load_zoo(spec)


def test_bad_question_line_names_file_and_line(tmp_path, data_copy):
    lines = (data_copy / "queries.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = json.dumps({"question": "no id"}) + "\n"
    (data_copy / "queries.jsonl").write_text("".join(lines), encoding="utf-8")
    spec = write_spec(tmp_path, HEAD + "candidates:\n" + CANDIDATE)
    with pytest.raises(ValueError, match="query_id") as caught:
        load_zoo(spec)
    assert "queries.jsonl:3" in str(caught.value)


@pytest.mark.parametrize("content, problem", [("{not json", "is not valid JSON"),
                                              ('["a", "list"]', "is not a JSON object of model name -> metadata"),
                                              ('{"gemma-7b": 7}', "is not a JSON object of model name -> metadata")])
def test_bad_models_json_names_the_spec_field_and_file(tmp_path, data_copy, content, problem):
    (data_copy / "models.json").write_text(content, encoding="utf-8")
    spec = write_spec(tmp_path, HEAD + "models: ../data/models.json\ncandidates:\n" + CANDIDATE)
    with pytest.raises(SpecError) as caught:
        load_zoo(spec)
    message = str(caught.value)
    assert caught.value.field == "models" and str(spec) in message and "models.json" in message
    assert problem in message and "Fix:" in message


@pytest.mark.parametrize("file_name", ["scores.csv", "queries.jsonl"])
def test_file_that_is_not_utf8_is_a_data_error(tmp_path, data_copy, file_name):
    path = data_copy / file_name
    path.write_bytes(path.read_bytes() + b"\xff\xfe broken \x81\n")
    spec = write_spec(tmp_path, HEAD + "candidates:\n" + CANDIDATE)
    with pytest.raises(DataError, match="not UTF-8 text") as caught:
        load_zoo(spec)
    assert file_name in str(caught.value) and "save the file as UTF-8" in str(caught.value)

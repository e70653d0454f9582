"""Recipe loading (defaults, overrides, errors) and the command line's error handling."""

from __future__ import annotations

import json

import pytest

from conftest import RECIPES
from mmrouter.cli import main
from mmrouter.config import (EvalConfig, LoraSettings, RecipeConfig, RouterModelConfig, SplitConfig, TrainConfig,
                             load_recipe, to_plain)
from mmrouter.errors import ConfigError

DEFAULT = RECIPES / "default.yaml"


def test_default_recipe_and_defaults():
    config, folder = load_recipe(DEFAULT)
    assert isinstance(config, RecipeConfig)
    assert folder == RECIPES.resolve()
    assert config.name == "default" and config.zoo == "../zoo_specs/mmlu_pro_small.yaml"
    assert (folder / config.zoo).resolve() == (RECIPES.parent / "zoo_specs" / "mmlu_pro_small.yaml").resolve()
    # set by the recipe file
    from omegaconf import OmegaConf

    raw = OmegaConf.load(DEFAULT)
    assert config.train.stage2_steps == raw.train.stage2_steps != TrainConfig().stage2_steps
    assert config.model.max_instruction_tokens == raw.model.max_instruction_tokens != RouterModelConfig().max_instruction_tokens
    # not in the recipe: dataclass defaults
    assert config.train.lr_connector == 3e-3 and config.train.group_size == 4
    assert config.model.llm_path == "packaged:SmolLM2-135M-Instruct"
    assert config.model.llm_lora == LoraSettings(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    assert config.precision == "auto" and config.eval.batch_size == 8
    assert isinstance(config.train, TrainConfig) and isinstance(config.model, RouterModelConfig)
    assert to_plain(config)["train"]["stage2_steps"] == raw.train.stage2_steps


def test_minimal_recipe_gets_all_defaults(tmp_path):
    recipe = tmp_path / "mini.yaml"
    recipe.write_text("name: mini\nzoo: zoo.yaml\n")
    config, folder = load_recipe(recipe)
    assert folder == tmp_path.resolve()
    assert config.split == SplitConfig() and config.train == TrainConfig() and config.eval == EvalConfig()
    assert config.model == RouterModelConfig() and config.seed == 0 and config.output_dir == "runs"


def test_overrides():
    config, _ = load_recipe(DEFAULT, ["train.stage2_steps=5", "seed=3", "model.llm_lora.r=2", "precision='no'",
                                      "train.lr_llm=0.5"])
    assert config.train.stage2_steps == 5 and config.seed == 3 and config.model.llm_lora.r == 2
    assert config.precision == "no" and config.train.lr_llm == 0.5
    assert config.train.stage1_steps == 30  # untouched recipe value
    # overrides are applied on top of the recipe file, later ones win
    config, _ = load_recipe(DEFAULT, ["train.stage2_steps=5", "train.stage2_steps=7"])
    assert config.train.stage2_steps == 7


@pytest.mark.parametrize("overrides, needle", [
    (["train.stage3_steps=1"], "stage3_steps"),
    (["nonsense=1"], "nonsense"),
    (["train.stage2_steps=many"], "many"),
    (["seed=[1, 2]"], "seed"),
])
def test_unknown_key_and_wrong_type_name_the_recipe(overrides, needle):
    with pytest.raises(ConfigError) as caught:
        load_recipe(DEFAULT, overrides)
    message = str(caught.value)
    assert str(DEFAULT) in message and needle in message
    assert "mmrouter/config.py" in message


def test_unknown_key_in_recipe_file(tmp_path):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("name: t\nzoo: z.yaml\ntrain:\n  stage_2_steps: 10\n")
    with pytest.raises(ConfigError, match="stage_2_steps") as caught:
        load_recipe(recipe)
    assert str(recipe) in str(caught.value)


def test_missing_required_and_bad_yaml(tmp_path):
    recipe = tmp_path / "noname.yaml"
    recipe.write_text("zoo: z.yaml\n")
    with pytest.raises(ConfigError, match="name") as caught:
        load_recipe(recipe)
    assert str(recipe) in str(caught.value)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        load_recipe(broken)
    assert str(broken) in str(caught.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_recipe(tmp_path / "absent.yaml")


@pytest.mark.parametrize("override, needle", [
    ("eval.perturbations=0", "perturbations"),
    ("precision=fp8", "precision"),
    ("train.batch_size=1", "batch_size"),
    ("train.rotate_options_prob=1.5", "rotate_options_prob"),
    ("split.test_size=0", "split sizes"),
    ("aptitude.max_keywords=6", "max_keywords"),
    ("model.max_instruction_tokens=4", "max_instruction_tokens"),
    ("model.llm_layers=-1", "llm_layers"),
    ("train.lr_schedule=cosine", "lr_schedule"),
    ("train.choice_weight=-1", "choice_weight"),
    ("model.encoder_lora.r=0", "LoRA settings"),
    ("model.encoder_lora.layers=[-1]", "layer indices"),
    ("model.score_features=-1", "score_features"),
])
def test_invalid_values(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_recipe(DEFAULT, [override])


# -- command line ----------------------------------------------------------------------------------------------------
def test_cli_route_missing_router(capsys):
    assert main(["route", "--router", "/nonexistent", "hi"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("mmrouter: error: ")
    assert "/nonexistent" in captured.err and "does not exist" in captured.err
    assert "Traceback" not in captured.err
    assert captured.out == ""


def test_cli_run_bad_recipe(capsys, tmp_path):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["run", str(DEFAULT), "train.bogus=1"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["run", str(DEFAULT), "train.stage1_steps"]) == 2
    assert "not of the form key=value" in capsys.readouterr().err
    assert main(["run", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_cli_route_with_saved_router(capsys, saved_router, tmp_path):
    assert main(["route", "--router", str(saved_router), "--json", "What is the derivative of x^3?"]) == 0
    result = json.loads(capsys.readouterr().out)
    candidates = json.loads((saved_router / "config.json").read_text())["candidates"]
    assert result["model"] in candidates and list(result["scores"]) == candidates
    assert result["model"] == max(result["scores"], key=result["scores"].get)
    assert main(["route", "--router", str(saved_router), "What is the derivative of x^3?"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"chosen: {result['model']}\n") and all(name in out for name in candidates)
    missing = tmp_path / "gone.png"
    assert main(["route", "--router", str(saved_router), "--image", str(missing), "describe"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_cli_usage_errors(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["route", "hi"])  # --router is required
    assert caught.value.code == 2
    assert "--router" in capsys.readouterr().err


def test_precision_auto_resolves_to_what_the_hardware_runs_fast():
    import torch

    from mmrouter.recipe import resolve_precision

    assert resolve_precision("no") == "no" and resolve_precision("bf16") == "bf16"
    expected = "bf16" if (torch.cuda.is_available() and torch.cuda.is_bf16_supported()) or (
        not torch.cuda.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()) else "no"
    assert resolve_precision("auto") == expected


def test_cli_run_takes_overrides_after_flags(monkeypatch, capsys):
    seen = {}

    def fake_load(path, overrides):
        seen["overrides"] = overrides
        raise ConfigError("stop here")

    monkeypatch.setattr("mmrouter.config.load_recipe", fake_load)
    assert main(["run", str(DEFAULT), "--no-progress", "seed=3", "train.stage2_steps=1"]) == 2
    assert seen["overrides"] == ["seed=3", "train.stage2_steps=1"]
    assert "stop here" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", str(DEFAULT), "--bogus-flag"])


@pytest.mark.parametrize("name", [".", "..", "a/b", "/tmp/abs", "run name", "../up"])
def test_run_name_that_is_a_path_is_refused_before_anything_is_touched(tmp_path, name, capsys):
    # The run folder output_dir/name is replaced at the end of a run: '..' would replace output_dir's parent.
    output = tmp_path / "out"
    precious = output / "precious_run"
    precious.mkdir(parents=True)
    with pytest.raises(ConfigError, match="cannot name a run folder"):
        load_recipe(DEFAULT, [f"name={name}", f"output_dir={output}"])
    assert main(["run", str(DEFAULT), f"name={name}", f"output_dir={output}"]) == 2
    assert "cannot name a run folder" in capsys.readouterr().err
    assert precious.is_dir() and [p.name for p in output.iterdir()] == ["precious_run"]


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    a_file = tmp_path / "afile"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="output_dir .* is a file"):
        load_recipe(DEFAULT, [f"output_dir={a_file}"])


def test_unknown_encoder_and_spec_without_questions_fail_before_training(tmp_path, repo_root, monkeypatch):
    from mmrouter import recipe
    from mmrouter.errors import SpecError
    from mmrouter.recipe import run_recipe

    config, recipe_dir = load_recipe(DEFAULT, ["model.encoder=clip", f"output_dir={tmp_path}"])
    with monkeypatch.context() as patch:
        def no_data_work(path):
            raise AssertionError("the zoo was loaded before the encoder name was checked")

        patch.setattr(recipe, "load_zoo", no_data_work)
        with pytest.raises(KeyError, match="unknown encoder 'clip'; known encoders: hf-text"):
            run_recipe(config, recipe_dir, progress=False)
    spec = tmp_path / "no_questions.yaml"
    spec.write_text(f"name: nq\nscores: {repo_root / 'data/mmlu_pro/scores.csv'}\ncandidates:\n"
                    "  - name: gemma-7b\n    results: {type: recorded}\n", encoding="utf-8")
    config, recipe_dir = load_recipe(DEFAULT, [f"zoo={spec}", f"output_dir={tmp_path / 'runs'}"])
    with pytest.raises(SpecError, match="field 'questions'.*no question bank") as caught:
        run_recipe(config, recipe_dir, progress=False)
    assert str(spec) in str(caught.value)
    assert not (tmp_path / "runs").exists()

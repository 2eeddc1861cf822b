"""Config validation, YAML files, CLI flags and the CLI commands end to end."""

from __future__ import annotations

import csv

import pytest
import yaml

from winnow.cli.main import build_parser, main
from winnow.cli.options import build_config
from winnow.config import Config, from_dict, load_yaml


def test_unknown_yaml_key_lists_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("modle: resnet18\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown key\(s\) \['modle'\]. Valid keys: .*model"):
        load_yaml(path)


@pytest.mark.parametrize("values, message", [
    ({"optimizer": "adam"}, r"optimizer must be one of \['sgd', 'adamw', 'radam', 'lookahead_radam'\], got 'adam'"),
    ({"epochs": 0}, "epochs must be a positive integer, got 0"),
    ({"label_smoothing": 1.5}, r"label_smoothing must be a number in \[0, 1\), got 1.5"),
    ({"val_fraction": 1.0}, r"val_fraction must be a number in \[0, 1\), got 1.0"),
    ({"in_chans": 2}, r"in_chans must be one of \['auto', 1, 3\], got 2"),
    ({"fill": 300}, r"fill must be an integer in \[0, 255\], got 300; it is the gray level"),
])
def test_bad_values_are_rejected_with_the_fix(values, message):
    with pytest.raises(ValueError, match=message):
        from_dict(values)


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"model": "resnet34", "lr": 0.01, "epochs": 3}))
    args = build_parser().parse_args(["train", "data.csv", "--config", str(path), "--lr", "0.5", "--no-cache"])
    config = build_config(args)
    assert (config.model, config.lr, config.epochs, config.cache) == ("resnet34", 0.5, 3, False)
    assert config.data == ["data.csv"] and config.batch_size == Config().batch_size


def test_every_config_key_has_a_flag():
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for key in Config.__dataclass_fields__:
        if key != "data":
            assert "--" + key.replace("_", "-") in help_text, key


def test_cli_train_predict_runs(tmp_path, image_folder, capsys):
    out = tmp_path / "runs"
    code = main(["train", str(image_folder), "--model", "test_resnet", "--img-size", "32", "--epochs", "2",
                 "--batch-size", "8", "--workers", "0", "--out", str(out), "--name", "cli", "--no-progress",
                 "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    assert "run: " in capsys.readouterr().out
    preds = tmp_path / "preds.csv"
    assert main(["predict", str(out / "cli"), str(image_folder / "bar"), "--out", str(preds)]) == 0
    rows = list(csv.DictReader(open(preds)))
    assert len(rows) == 12 and set(rows[0]) == {"path", "predicted", "prob_bar", "prob_disk", "prob_square"}
    capsys.readouterr()
    assert main(["runs", "--dir", str(out)]) == 0
    table = capsys.readouterr().out
    assert "cli" in table and "test_resnet" in table and "val_macro_f1=" in table


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "x.png"]) == 2
    assert "not a winnow run folder" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["baseline", "longtail", "finegrained", "fewshot", "staged"])
def test_named_recipes_are_valid_configs(name):
    from winnow.recipes import load_recipe

    args = build_parser().parse_args(["train", "data.csv", "--recipe", name, "--epochs", "2"])
    config = build_config(args, base=load_recipe(args.recipe))
    assert config.epochs == 2 and config.data == ["data.csv"]
    assert config.to_dict().items() >= {k: v for k, v in load_recipe(name).items() if k != "epochs"}.items()


def test_unknown_recipe_lists_valid_ones():
    from winnow.recipes import load_recipe

    with pytest.raises(ValueError, match="unknown recipe 'fast'; valid recipes: baseline, longtail, finegrained, fewshot, staged"):
        load_recipe("fast")

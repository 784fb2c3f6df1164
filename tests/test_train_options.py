"""Typer options from dataclass fields (alignkit.cli.options) and the library side of `alignkit train`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import pytest
import typer
from typer.testing import CliRunner

from alignkit.cli.options import dataclass_parameters, given_options, with_dataclass_options
from alignkit.errors import AlignkitError


@dataclass
class Toy:
    name: str = field(default="x", metadata={"help": "A name."})
    count: int = field(default=3, metadata={"help": "How many.", "panel": "Numbers"})
    rate: Optional[float] = field(default=None, metadata={"help": "A rate."})
    langs: tuple[str, ...] = field(default=("en", "sw"), metadata={"help": "Languages."})
    layers: Optional[tuple[int, ...]] = field(default=None, metadata={"help": "Layers.", "flag": "--at"})
    words: list[str] = field(default_factory=list, metadata={"help": "Words."})
    keep: bool = field(default=False, metadata={"help": "Keep it.", "flag": "--keep/--drop"})
    secret: int = field(default=0, metadata={"help": "Not on the CLI.", "cli": False})
    pairs: dict = field(default_factory=dict, metadata={"help": "k=v pairs.",
                                                        "parse": lambda s: dict(p.split("=") for p in s.split(","))})


def toy_app():
    app = typer.Typer()
    seen: dict = {}

    @app.command()
    @with_dataclass_options(Toy)
    def cmd(verbose: bool = typer.Option(False, "--verbose"), **options) -> None:
        seen.update(given_options(options, Toy), verbose=verbose)
    return app, seen


def test_every_cli_field_becomes_a_keyword_option_with_its_flag_help_and_default():
    params = {p.name: p for p in dataclass_parameters(Toy)}
    assert list(params) == ["name", "count", "rate", "langs", "layers", "words", "keep", "pairs"]  # no secret
    opt = params["count"].default
    assert opt.default is None and opt.param_decls == ("--count",) and opt.help == "How many."
    assert opt.show_default == "3" and opt.rich_help_panel == "Numbers"
    assert params["langs"].default.show_default == "en,sw"
    assert params["rate"].default.show_default is False  # None default: nothing to show
    assert params["keep"].default.param_decls == ("--keep/--drop",) and params["keep"].default.show_default == "drop"
    assert params["layers"].default.param_decls == ("--at",)
    assert params["count"].annotation == Optional[int] and params["langs"].annotation == Optional[str]
    assert all(p.kind is p.KEYWORD_ONLY for p in params.values())


def test_only_given_options_reach_the_command_converted_to_field_values():
    app, seen = toy_app()
    r = CliRunner().invoke(app, ["--count", "5", "--langs", "en, tr ,", "--at", "1,3", "--words", "a,b",
                                 "--drop", "--pairs", "a=1"])
    assert r.exit_code == 0, r.output
    assert seen == {"count": 5, "langs": ("en", "tr"), "layers": (1, 3), "words": ["a", "b"], "keep": False,
                    "pairs": {"a": "1"}, "verbose": False}


def test_no_options_given_means_none_reach_the_command():
    app, seen = toy_app()
    assert CliRunner().invoke(app, []).exit_code == 0
    assert seen == {"verbose": False}


def test_a_non_number_in_a_number_list_is_an_alignkit_error_naming_the_flag():
    with pytest.raises(AlignkitError, match="--at"):
        given_options({"layers": "1,x"}, Toy)


def test_a_command_without_kwargs_or_a_field_declared_twice_is_refused():
    def no_kwargs(a: int = 1) -> None:
        pass
    with pytest.raises(TypeError, match="options"):
        with_dataclass_options(Toy)(no_kwargs)
    with pytest.raises(ValueError, match="two"):
        dataclass_parameters(Toy, Toy)


def test_train_help_lists_every_config_field_with_its_help(monkeypatch, capsys):
    from alignkit.cli import main
    from alignkit.training.config import ObjectiveConfig, TrainConfig

    monkeypatch.setenv("COLUMNS", "400")  # one line per option: flags and help are not wrapped
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    shown = [f for cls in (TrainConfig, ObjectiveConfig) for f in dataclasses.fields(cls)
             if f.metadata.get("cli", True)]
    assert len(shown) == 47
    for f in shown:
        flag = (f.metadata.get("flag") or "--" + f.name.replace("_", "-")).split("/")[0]
        assert flag in text, flag
        assert f.metadata["help"][:30] in text, f.name
    for extra in ("--config", "--quiet", "--drop-state"):
        assert extra in text


def test_load_train_config_merges_toml_and_overrides(tmp_path):
    from alignkit.training.config import load_train_config

    conf = tmp_path / "c.toml"
    conf.write_text('train-file = "a.tsv"\nlr = 0.1\neval_langs = "sw,ur"\n[objective]\nepsilon = 0.2\n'
                    'apt-layers = [1, 2]\n')
    cfg = load_train_config(conf, {"lr": 0.5, "seed": None, "cl_tau": 0.1, "weights": "cl=0.5"})
    assert cfg.train_file == "a.tsv" and cfg.lr == 0.5 and cfg.seed == 42  # None = not given
    assert cfg.eval_langs == ("sw", "ur") and cfg.weights == {"cl": 0.5}
    assert cfg.objective.epsilon == 0.2 and cfg.objective.apt_layers == (1, 2) and cfg.objective.cl_tau == 0.1
    assert load_train_config(None, {"out": "o"}).out == "o"
    conf.write_text("learning_rate = 1\n")
    with pytest.raises(AlignkitError, match=r"config .*c\.toml: unknown setting 'learning_rate'"):
        load_train_config(conf)
    with pytest.raises(AlignkitError, match="does not exist"):
        load_train_config(tmp_path / "missing.toml")


def test_run_training_dispatches_the_probe_variant(monkeypatch):
    from alignkit.training import probe, run, trainer
    from alignkit.training.config import TrainConfig

    calls = []
    monkeypatch.setattr(probe, "train_probe", lambda cfg, progress: calls.append(("probe", cfg.variant)))
    monkeypatch.setattr(trainer, "train", lambda cfg, progress: calls.append(("train", cfg.variant)))
    run.run_training(TrainConfig(variant="probe"), progress=False)
    run.run_training(TrainConfig(variant="rt"), progress=False)
    assert calls == [("probe", "probe"), ("train", "rt")]


def test_task_data_dir_defaults_to_alignkit_data_and_says_how_to_fix_its_absence(monkeypatch, tmp_path):
    from alignkit.inputs.taskdata import get_task, task_data_dir

    xnli = get_task("xnli")
    monkeypatch.delenv("ALIGNKIT_DATA", raising=False)
    with pytest.raises(AlignkitError, match="pass --data DIR"):
        task_data_dir(xnli)
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path))
    (tmp_path / "xnli").mkdir()
    assert task_data_dir(xnli) == tmp_path / "xnli"
    with pytest.raises(AlignkitError, match="elsewhere does not exist"):
        task_data_dir(xnli, tmp_path / "elsewhere")

"""The training loop on a tiny random BERT: learning, determinism, resume, checkpoints, bad inputs."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from alignkit.cli import main
from alignkit.training.config import TrainConfig
from alignkit.training.trainer import train

WORDS = ("the a man woman dog cat runs sleeps eats park house street city is was he she they it in on "
         "at big small red blue green happy sad today").split()
CUES = {"entailment": "yes", "neutral": "maybe", "contradiction": "no"}


def make_tiny_model(d: Path) -> Path:
    """A 2-layer, hidden-32 random BERT + WordLevel fast tokenizer saved as a HF directory."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
    for w in WORDS + list(CUES.values()):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]").save_pretrained(d)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64), add_pooling_layer=False).save_pretrained(d)
    return d


def make_data(path: Path, n: int, seed: int) -> Path:
    """XNLI-format rows whose label is given away by a cue word at the end of the hypothesis."""
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        lab = rng.choice(list(CUES))
        prem = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 7)))
        hyp = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 4))) + " " + CUES[lab]
        lines.append(f"{prem}\t{hyp}\t{lab}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # One intra-op thread: on a shared 2-core machine, two threads spin against each other
    # on these tiny matrices (a 25 ms step takes seconds). Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield _env(tmp_path_factory)
    torch.set_num_threads(threads)


def _env(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    model = make_tiny_model(root / "model")
    data = root / "xnli"
    data.mkdir()
    make_data(data / "train-en.tsv", 96, 1)
    make_data(data / "dev-en.tsv", 48, 2)
    for lang, seed in (("en", 3), ("sw", 4)):
        make_data(data / f"test-{lang}.tsv", 40, seed)
    return {"root": root, "model": model, "data": data}


def cfg(env, out: str, **kw) -> TrainConfig:
    base = dict(model=str(env["model"]), train_file=str(env["data"] / "train-en.tsv"),
                dev_file=str(env["data"] / "dev-en.tsv"), out=str(env["root"] / out), batch_size=16,
                lr=3e-3, max_length=32, seed=7, log_every=1, device="cpu")
    base.update(kw)
    return TrainConfig.from_mapping(base)


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    w = load_file(str(out / "model.safetensors"))
    w.update({f"head.{k}": v for k, v in load_file(str(out / "classifier_head.safetensors")).items()})
    return w


def losses(out: Path) -> list[float]:
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if "loss" in r]


def test_a_few_steps_on_a_tiny_model_decrease_the_loss_and_select_on_english_dev(env):
    res = train(cfg(env, "learn", epochs=4), progress=False)
    ls = losses(res.out)
    assert len(ls) == 24
    assert sum(ls[-6:]) / 6 < 0.8 * sum(ls[:6]) / 6
    meta = json.loads((res.out / "alignkit_train.json").read_text())
    assert meta["best_step"] == res.best_step and meta["dev_acc"] == pytest.approx(res.best_dev_acc)
    devs = [json.loads(x) for x in (res.out / "metrics.jsonl").read_text().splitlines() if '"dev"' in x]
    assert res.best_dev_acc == max(d["dev_acc"] for d in devs) > 0.5  # chance is 1/3
    assert not list(res.out.glob("state-*")) and not list(res.out.glob("best-*"))


def test_checkpoint_is_a_plain_hf_encoder_plus_head_and_eval_task_writes_tidy_rows(env, tmp_path, capsys):
    from transformers import AutoModel

    from alignkit.inputs.encoders import load_encoder
    from alignkit.results.rows import read_csv

    out = env["root"] / "learn"
    if not (out / "classifier_head.safetensors").is_file():
        train(cfg(env, "learn", epochs=4), progress=False)
    model = AutoModel.from_pretrained(str(out))  # transformers reads it directly
    saved = final_weights(out)
    assert torch.equal(model.embeddings.word_embeddings.weight, saved["embeddings.word_embeddings.weight"])
    assert load_encoder(str(out)).num_layers == 2  # what `alignkit score` loads
    rc = main(["eval-task", str(out), "--task", "xnli", "--data", str(env["data"]), "--langs", "en,sw",
               "--out", str(tmp_path / "ev")])
    assert rc == 0
    df = read_csv(tmp_path / "ev" / "results.csv")
    assert list(df["pair"]) == ["en", "sw"] and set(df["metric"]) == {"xnli_acc"}
    assert list(df["layer"]) == [-1, -1] and list(df["method"]) == ["supervised", "zero-shot"]
    for lang in ("en", "sw"):
        pred = (tmp_path / "ev" / f"predictions-{lang}.tsv").read_text().splitlines()[1:]
        acc = sum(int(x.split("\t")[3]) for x in pred) / len(pred)
        r = df[df["pair"] == lang].iloc[0]
        assert r["value"] == pytest.approx(acc) and r["n"] == 40 and r["ci_low"] <= acc <= r["ci_high"]


def test_same_seed_gives_identical_weights_on_cpu(env):
    a = train(cfg(env, "det-a", variant="ept+apt+rt+cl", max_steps=4), progress=False)
    b = train(cfg(env, "det-b", variant="ept+apt+rt+cl", max_steps=4), progress=False)
    wa, wb = final_weights(a.out), final_weights(b.out)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(cfg(env, "det-c", variant="ept+apt+rt+cl", max_steps=4, seed=8), progress=False)
    assert not torch.equal(final_weights(c.out)["head.weight"], wa["head.weight"])


def test_sparse_embedding_updates_touch_only_batch_rows(env):
    from safetensors.torch import load_file

    res = train(cfg(env, "sparse", variant="ept+rt", max_steps=1, batch_size=4), progress=False)
    before = load_file(str(env["model"] / "model.safetensors"))["embeddings.word_embeddings.weight"]
    after = final_weights(res.out)["embeddings.word_embeddings.weight"]
    changed = (after != before).any(dim=1)
    assert 0 < int(changed.sum()) < before.shape[0]
    assert not changed[0]  # [PAD] is never a content token of a batch


def test_killed_run_resumes_to_the_same_final_weights(env):
    full = train(cfg(env, "res-full", variant="rt+cl", max_steps=6, save_every=2, eval_every=6), progress=False)
    c = cfg(env, "res-cut", variant="rt+cl", max_steps=6, save_every=2, eval_every=6)
    with pytest.raises(KeyboardInterrupt):
        train(c, progress=False, stop_after=5)
    assert [p.name for p in Path(c.out).glob("state-*")] == ["state-00000004"]
    resumed = train(c, progress=False)
    assert resumed.resumed_from == 4
    wf, wr = final_weights(full.out), final_weights(resumed.out)
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    assert losses(full.out) == losses(resumed.out)  # the log was trimmed back to step 4, not duplicated
    again = train(c, progress=False)  # a finished run is reported, not retrained
    assert again.already_complete


def test_resumed_ept_run_reports_the_same_table_diagnostics(env):
    from alignkit.training.diagnostics import read_training_diagnostics

    kw = dict(variant="ept+rt", max_steps=6, save_every=2, eval_every=6)
    full = train(cfg(env, "dres-full", **kw), progress=False)
    c = cfg(env, "dres-cut", **kw)
    with pytest.raises(KeyboardInterrupt):
        train(c, progress=False, stop_after=3)
    resumed = train(c, progress=False)
    assert resumed.resumed_from == 2
    a, b = read_training_diagnostics(full.out), read_training_diagnostics(resumed.out)
    assert a == b and a["touched_rows"] > 0 and a["row_movement_median_rho"] > 0


def test_toml_config_with_cli_override(env, tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text(f'model = "{env["model"]}"\ntrain-file = "{env["data"] / "train-en.tsv"}"\n'
                    f'dev_file = "{env["data"] / "dev-en.tsv"}"\nvariant = "rt"\nmax_steps = 1\n'
                    f'batch_size = 8\nmax_length = 32\n[objective]\nepsilon = 0.2\n')
    out = tmp_path / "o"
    assert main(["train", "--config", str(conf), "--max-steps", "2", "--out", str(out), "--quiet"]) == 0
    ident = json.loads((out / "run_config.json").read_text())["identity"]
    assert ident["max_steps"] == 2 and ident["variant"] == "rt" and ident["objective"]["epsilon"] == 0.2


def test_linear_probe_checkpoint_reproduces_its_dev_accuracy(env, tmp_path):
    from alignkit.tasks.classification import evaluate_task

    c = cfg(env, "probe", variant="probe", dev_file=str(env["data"] / "test-en.tsv"))
    from alignkit.training.probe import train_probe

    res = train_probe(c, progress=False)
    rows = evaluate_task(res.out, "xnli", env["data"], ["en"])
    assert rows[0]["value"] == pytest.approx(res.best_dev_acc, abs=1 / 40 + 1e-9)


def _one_line_error(capsys, fragment):
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("case, fragment", [
    ("missing", "does not exist"),
    ("labels", ":2: label 'maybe' is not a xnli label"),
    ("variant", "unknown variant"),
    ("not_encoder", "not an encoder"),
    ("config_key", "unknown setting"),
])
def test_bad_inputs_exit_2_with_one_line(env, tmp_path, capsys, case, fragment):
    args = ["train", "--model", str(env["model"]), "--train-file", str(env["data"] / "train-en.tsv"),
            "--out", str(tmp_path / "o"), "--max-steps", "1", "--quiet"]
    if case == "missing":
        args[4] = str(tmp_path / "nope.tsv")
    elif case == "labels":
        bad = tmp_path / "bad.tsv"
        bad.write_text("a b\tc d yes\tentailment\ne f\tg h\tmaybe\n")
        args[4] = str(bad)
    elif case == "variant":
        args += ["--variant", "ept+magic"]
    elif case == "not_encoder":
        from transformers import GPT2Config, GPT2Model

        d = tmp_path / "gpt"
        GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=16)).save_pretrained(d)
        args[2] = str(d)
    elif case == "config_key":
        conf = tmp_path / "c.toml"
        conf.write_text("learning_rate = 0.1\n")
        args += ["--config", str(conf)]
    assert main(args) == 2
    _one_line_error(capsys, fragment)


def test_eval_task_bad_inputs_exit_2(env, tmp_path, capsys):
    assert main(["eval-task", str(env["model"]), "--data", str(env["data"]), "--langs", "sw",
                 "--out", str(tmp_path / "e")]) == 2
    _one_line_error(capsys, "no classifier head")
    out = env["root"] / "learn"
    if (out / "classifier_head.safetensors").is_file():
        assert main(["eval-task", str(out), "--data", str(env["data"]), "--langs", "ur",
                     "--out", str(tmp_path / "e")]) == 2
        _one_line_error(capsys, "test-ur.tsv does not exist")


def test_an_output_dir_with_other_settings_is_refused(env, capsys):
    train(cfg(env, "clash", max_steps=1), progress=False)
    args = ["train", "--model", str(env["model"]), "--train-file", str(env["data"] / "train-en.tsv"),
            "--out", str(env["root"] / "clash"), "--max-steps", "1", "--lr", "0.5", "--quiet"]
    assert main(args) == 2
    _one_line_error(capsys, "different settings")


def test_torchrun_ddp_smoke_on_cpu(env, tmp_path):
    """Two gloo processes under torchrun train one checkpoint (dense table, DDP)."""
    import os
    import socket
    import subprocess
    import sys

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed not available")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    script = tmp_path / "run.py"
    script.write_text("import sys\nfrom alignkit.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", str(script),
           "train", "--model", str(env["model"]), "--train-file", str(env["data"] / "train-en.tsv"),
           "--dev-file", str(env["data"] / "dev-en.tsv"), "--out", str(out), "--variant", "rt+cl",
           "--max-steps", "2", "--batch-size", "8", "--max-length", "32", "--device", "cpu", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("best English dev accuracy") == 1  # only rank 0 reports
    meta = json.loads((out / "alignkit_train.json").read_text())
    assert meta["config"]["embeddings"] == "auto" and meta["steps"] == 2
    assert (out / "model.safetensors").is_file()


def test_interrupted_final_evaluation_is_finished_without_retraining(env, monkeypatch):
    import alignkit.training.trainer as tr

    c = cfg(env, "eval-cut", max_steps=2, eval_data=str(env["data"]), eval_langs="sw")
    real = tr.evaluate_task

    def killed(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(tr, "evaluate_task", killed)
    with pytest.raises(KeyboardInterrupt):
        train(c, progress=False)
    log_before = (Path(c.out) / "metrics.jsonl").read_text()
    monkeypatch.setattr(tr, "evaluate_task", real)
    res = train(c, progress=False)
    assert [r["pair"] for r in res.rows] == ["sw"] and (Path(c.out) / "results.csv").is_file()
    assert (Path(c.out) / "metrics.jsonl").read_text() == log_before  # no step was re-run
    assert train(c, progress=False).already_complete


# ----------------------------------------------------------------------------- EPT / APT that act (SPEC §3 v2)


def _table(out: Path) -> torch.Tensor:
    return final_weights(out)["embeddings.word_embeddings.weight"]


def test_ept_alone_moves_the_touched_rows_to_the_margin_within_a_few_dozen_steps(env):
    from alignkit.training.diagnostics import read_training_diagnostics

    res = train(cfg(env, "ept-alone", variant="ept", weights="task=0", max_steps=30, eval_every=30,
                    lr=1e-3), progress=False)
    d = read_training_diagnostics(res.out)
    assert d["variant"] == "ept" and d["steps"] == 30 and d["ept_anchor"] == "centroid"
    assert d["share_at_margin_final"] >= 0.9
    assert d["row_movement_median_rho_final"] >= 0.3  # m = 0.3 rho: pushed rows moved at least m
    assert d["ept_loss_first"] == pytest.approx(0.3, abs=1e-6)  # at W = W⁰ every row is 0 past its start
    assert d["ept_loss_last"] < 0.1 * d["ept_loss_first"]
    meta = json.loads((res.out / "alignkit_train.json").read_text())
    assert d["embedding_lr"] == pytest.approx(meta["embedding_lr_rule"]) != 1e-3  # the reach rule, not lr
    recs = [json.loads(x) for x in (res.out / "metrics.jsonl").read_text().splitlines()]
    moves = [r["row_movement_median_rho"] for r in recs if "loss" in r]
    assert moves[0] > 0 and moves[-1] > moves[0]


def test_dense_and_sparse_paths_apply_the_same_table_learning_rate(env):
    from safetensors.torch import load_file

    before = load_file(str(env["model"] / "model.safetensors"))["embeddings.word_embeddings.weight"]
    kw = dict(variant="ept+rt", max_steps=1, batch_size=8, lr=1e-4, embedding_lr=3e-2, eval_every=1)
    sparse = _table(train(cfg(env, "lr-sparse", embeddings="sparse", **kw), progress=False).out)
    dense = _table(train(cfg(env, "lr-dense", embeddings="dense", **kw), progress=False).out)
    torch.testing.assert_close(dense, sparse, atol=2e-6, rtol=0)
    step = (sparse - before).abs()
    # Adam's first step moves every coordinate with a gradient by exactly lr·sign(g): the table's lr
    assert step.max().item() == pytest.approx(3e-2, rel=1e-3)
    assert (step[step > 0] > 1e-2).float().mean() > 0.9


def test_embedding_lr_rule_sets_the_table_lr_of_ept_runs_and_is_recorded(env):
    import math

    from alignkit.training.diagnostics import embedding_lr_rule, read_training_diagnostics

    from safetensors.torch import load_file

    res = train(cfg(env, "rule", variant="ept", max_steps=3, eval_every=3), progress=False)
    meta = json.loads((res.out / "alignkit_train.json").read_text())
    w0 = load_file(str(env["model"] / "model.safetensors"))["embeddings.word_embeddings.weight"]
    rho = float(w0.pow(2).sum(1).mean().sqrt())
    # schedule factors of 3 steps without warm-up: 1, 2/3, 1/3; the median row is in all three batches
    assert meta["median_touch_steps"] == pytest.approx(2.0)
    assert meta["embedding_lr"] == pytest.approx(2.5 * 0.3 * rho / (2.0 * math.sqrt(32)), rel=1e-5)
    assert embedding_lr_rule(0.3, rho, 2.0, 32) == pytest.approx(meta["embedding_lr"], rel=1e-5)
    assert read_training_diagnostics(res.out)["embedding_lr"] == pytest.approx(meta["embedding_lr"])
    ft = read_training_diagnostics(train(cfg(env, "rule-ft", max_steps=1), progress=False).out)
    assert ft["embedding_lr"] == pytest.approx(3e-3)  # no EPT: the table trains at lr
    assert math.isnan(ft["ept_loss_first"]) and math.isnan(ft["share_at_margin"]) and math.isnan(ft["apt_loss_max"])
    assert ft["row_movement_median_rho"] > 0  # moved by the task gradient alone


def test_ept_apt_rt_run_reports_apt_loss_and_shares_the_dropout_setting(env):
    import math

    from alignkit.training.diagnostics import KEYS, read_training_diagnostics

    d = read_training_diagnostics(train(cfg(env, "apt", variant="ept+apt+rt", max_steps=6, eval_every=6),
                                        progress=False).out)
    assert set(KEYS) <= set(d) and d["attention_dropout"] == 0.0
    assert d["apt_loss_first"] >= 0 and d["apt_loss_max"] > 1e-6 and not math.isnan(d["apt_loss_last"])
    assert d["apt_loss_max"] >= max(d["apt_loss_first"], d["apt_loss_last"])


def test_apt_with_attention_dropout_on_is_refused(env):
    from alignkit.errors import AlignkitError

    with pytest.raises(AlignkitError, match="attention_dropout = 0"):
        train(cfg(env, "apt-drop", variant="ept+apt+rt", max_steps=1, attention_dropout=0.1), progress=False)


def test_every_variant_runs_with_the_configured_attention_dropout(env, monkeypatch):
    from alignkit.training import model as train_model
    from alignkit.training import trainer

    seen = []
    real = train_model.set_attention_dropout

    def spy(model, p):
        n = real(model, p)
        seen.append((p, train_model.attention_dropout_of(model), n))
        return n
    monkeypatch.setattr(trainer, "set_attention_dropout", spy)
    train(cfg(env, "drop-ft", max_steps=1, attention_dropout=0.1), progress=False)
    train(cfg(env, "drop-rt", variant="rt", max_steps=1, attention_dropout=0.1), progress=False)
    assert seen == [(0.1, 0.1, 2), (0.1, 0.1, 2)]


def test_training_on_the_evaluated_split_is_refused(env):
    from alignkit.errors import AlignkitError

    c = cfg(env, "proto", train_file=str(env["data"] / "test-en.tsv"), dev_file=None, eval_data=str(env["data"]),
            eval_langs="sw", eval_split="test")
    with pytest.raises(AlignkitError, match="same split"):
        c.check()
    c.eval_split = None  # default: the other split than the training file's
    assert c.resolved_eval_split == "dev"


def test_row_budget_gives_rows_above_the_median_the_median_budget():
    from alignkit.training.optim import RowAdam, row_budget_scale

    scale = row_budget_scale({1: 1.0, 2: 2.0, 3: 4.0}, vocab=5)
    assert scale.tolist() == [1.0, 1.0, 1.0, 0.5, 1.0]
    table = torch.zeros(5, 3)
    opt = RowAdam(table)
    ids = torch.tensor([2, 3])
    opt.step(ids, torch.tensor([[1.0, -2.0, 3.0], [-1.0, 1.0, 1.0]]), lr=0.1, scale=scale[ids])
    # Adam's first step is lr·sign(g) per coordinate, here times the row's scale
    torch.testing.assert_close(table[2], torch.tensor([-0.1, 0.1, -0.1]))
    torch.testing.assert_close(table[3], torch.tensor([0.05, -0.05, -0.05]))
    assert table[[0, 1, 4]].abs().sum() == 0


def test_eval_task_refuses_the_split_the_checkpoint_was_trained_on(env, tmp_path):
    from alignkit.errors import AlignkitError
    from alignkit.inputs.taskdata import zero_shot_split
    from alignkit.tasks.classification import evaluate_task

    meta = {"config": {"train_file": str(env["data"] / "test-en.tsv")}}
    with pytest.raises(AlignkitError, match="same split"):  # refused before any data or model is touched
        evaluate_task(tmp_path, "xnli", env["data"], ["sw"], split="test", loaded=(None, None, meta))
    assert zero_shot_split("a/test-en.tsv") == "dev" and zero_shot_split("a/dev-en.tsv") == "test"
    assert zero_shot_split("a/test-en.tsv", "test") == "test"  # an explicit split is kept (then checked)


def test_tablelr_control_trains_the_table_at_ept_rate_without_its_loss(env):
    """``rt+tablelr`` (SPEC §2 v3): the table lr and per-row budget of an EPT run of the same data,
    seed and steps, and no EPT or APT loss (its table moves, but differently from EPT's)."""
    from safetensors.torch import load_file

    kw = dict(max_steps=3, eval_every=3, lr=1e-4)
    ept = train(cfg(env, "ctl-ept", variant="ept+apt+rt", **kw), progress=False)
    ctl = train(cfg(env, "ctl-tablelr", variant="rt+tablelr", **kw), progress=False)
    rt = train(cfg(env, "ctl-rt", variant="rt", **kw), progress=False)
    m_ept, m_ctl, m_rt = (json.loads((r.out / "alignkit_train.json").read_text()) for r in (ept, ctl, rt))
    assert m_ctl["embedding_lr"] == m_ept["embedding_lr"] == m_ept["embedding_lr_rule"]
    assert m_ctl["median_touch_steps"] == m_ept["median_touch_steps"]
    assert m_rt["embedding_lr"] == pytest.approx(1e-4) and m_rt["embedding_lr"] < m_ctl["embedding_lr"] / 10
    recs = [json.loads(x) for x in (ctl.out / "metrics.jsonl").read_text().splitlines()]
    assert all("ept" not in r and "apt" not in r for r in recs)  # no push and no pull in the control
    w0 = load_file(str(env["model"] / "model.safetensors"))["embeddings.word_embeddings.weight"]
    moved = {k: (_table(r.out) - w0).norm(dim=1).max().item() for k, r in (("ctl", ctl), ("rt", rt))}
    assert moved["ctl"] > 20 * moved["rt"]  # the control's table trains much faster than rt's

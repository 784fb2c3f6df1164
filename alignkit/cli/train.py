"""`alignkit train` and `alignkit eval-task`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from alignkit.cli import app

_OBJ = "Objectives"
_RUN = "Run"


@app.command("train", context_settings={"help_option_names": ["-h", "--help"]})
def train_cmd(
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file with any of these settings "
                                          "(same names, '-' or '_'); options given here override it."),
    model: Optional[str] = typer.Option(None, "--model", help="Encoder to fine-tune (default bundled:multilingual-e5-small)."),
    task: Optional[str] = typer.Option(None, "--task", help="xnli (default) | pawsx"),
    train_file: Optional[str] = typer.Option(None, "--train-file", help="English training TSV (XTREME format)."),
    dev_file: Optional[str] = typer.Option(None, "--dev-file", help="English dev TSV for model selection "
                                           "(default: hold out --dev-fraction of the training file)."),
    dev_fraction: Optional[float] = typer.Option(None, "--dev-fraction", help="Held-out share of the premises when no "
                                                 "--dev-file (0.1; every premise's hypotheses stay on one side)."),
    dev_seed: Optional[int] = typer.Option(None, "--dev-seed", help="Seed of the premise-grouped dev hold-out (0; "
                                           "the same for every training seed)."),
    max_train_rows: Optional[int] = typer.Option(None, "--max-train-rows", help="Use a seeded subset of the training rows."),
    out: Optional[str] = typer.Option(None, "--out", help="Checkpoint directory (HF format); re-running resumes."),
    variant: Optional[str] = typer.Option(None, "--variant", help="ft | rt | rt+cl | ept+apt+rt | ept+apt+rt+cl | "
                                          "probe (linear probe on the frozen encoder) | any '+'-joined objectives."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Objective weights, e.g. 'rt=1,cl=0.5,vrn=0.1'."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (1)."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", help="Optimizer steps (overrides --epochs)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="AdamW learning rate (2e-5)."),
    embedding_lr: Optional[float] = typer.Option(None, "--embedding-lr", help="Learning rate of the word-embedding table "
                                                 "(default: --lr; with EPT the reach rule of docs/method.md)."),
    attention_dropout: Optional[float] = typer.Option(None, "--attention-dropout", help="Dropout on attention "
                                                      "probabilities for every variant (0; APT needs 0)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", help="AdamW decoupled weight decay (0)."),
    warmup_ratio: Optional[float] = typer.Option(None, "--warmup-ratio", help="Share of steps with linear warm-up (0)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Effective batch size (32)."),
    grad_accum: Optional[int] = typer.Option(None, "--grad-accum", help="Micro-batches per step (1)."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Max tokens per pair (128)."),
    clip: Optional[float] = typer.Option(None, "--clip", help="Gradient-norm clip (1.0; 0 = off)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (42)."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Evaluate English dev (and save) every N steps (default: each epoch)."),
    save_every: Optional[int] = typer.Option(None, "--save-every", help="Also save a resume state every N steps."),
    embeddings: Optional[str] = typer.Option(None, "--embeddings", help="auto | sparse | dense | frozen "
                                             "(auto: sparse row updates on CPU, dense on GPU/DDP)."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N (default: cuda if present)."),
    epsilon: Optional[float] = typer.Option(None, "--epsilon", help="VME ball radius in units of rho (0.3).", rich_help_panel=_OBJ),
    perturbation: Optional[str] = typer.Option(None, "--perturbation", help="random | adversarial (PGD).", rich_help_panel=_OBJ),
    pgd_steps: Optional[int] = typer.Option(None, "--pgd-steps", help="PGD steps k (1).", rich_help_panel=_OBJ),
    pgd_step_size: Optional[float] = typer.Option(None, "--pgd-step-size", help="PGD step in units of rho (2.5*eps/k).", rich_help_panel=_OBJ),
    rt_kl: Optional[float] = typer.Option(None, "--rt-kl", help="Weight of KL(p(E)||p(E+delta)) in RT (0).", rich_help_panel=_OBJ),
    ept_margin: Optional[float] = typer.Option(None, "--ept-margin", help="EPT margin m in units of rho (0.3).", rich_help_panel=_OBJ),
    ept_anchor: Optional[str] = typer.Option(None, "--ept-anchor", help="original | centroid.", rich_help_panel=_OBJ),
    apt_layers: Optional[str] = typer.Option(None, "--apt-layers", help="1-based layers for APT, e.g. 1,2,3 (all).", rich_help_panel=_OBJ),
    cl_view: Optional[str] = typer.Option(None, "--cl-view", help="vme | codeswitch (positive view).", rich_help_panel=_OBJ),
    cl_layer: Optional[int] = typer.Option(None, "--cl-layer", help="hidden_states index pooled for CL (-1 = last).", rich_help_panel=_OBJ),
    cl_tau: Optional[float] = typer.Option(None, "--cl-tau", help="InfoNCE temperature (0.05).", rich_help_panel=_OBJ),
    vrn_delta: Optional[float] = typer.Option(None, "--vrn-delta", help="Target similarity of the variance penalty (0).", rich_help_panel=_OBJ),
    codeswitch_lexicons: Optional[str] = typer.Option(None, "--codeswitch-lexicons", help="Shipped pairs whose TRAIN split "
                                                      "code-switches, e.g. en-sw,en-ur.", rich_help_panel=_OBJ),
    codeswitch_prob: Optional[float] = typer.Option(None, "--codeswitch-prob", help="Per-word switch probability (0.3).", rich_help_panel=_OBJ),
    rsda_copies: Optional[int] = typer.Option(None, "--rsda-copies", help="RS-DA synonym copies per example (3).", rich_help_panel=_OBJ),
    wordnet_dir: Optional[str] = typer.Option(None, "--wordnet-dir", help="WordNet 3.0 dict dir for RS-DA "
                                              "(default /usr/share/wordnet, from apt-get install wordnet-base).", rich_help_panel=_OBJ),
    eval_data: Optional[str] = typer.Option(None, "--eval-data", help="Task data dir for the zero-shot evaluation at the end.", rich_help_panel=_RUN),
    eval_langs: Optional[str] = typer.Option(None, "--eval-langs", help="Languages to evaluate at the end, e.g. en,sw,ur.", rich_help_panel=_RUN),
    eval_split: Optional[str] = typer.Option(None, "--eval-split", help="Split evaluated at the end (default: the "
                                             "other split than the training file's: test-en -> dev).", rich_help_panel=_RUN),
    eval_max_rows: Optional[int] = typer.Option(None, "--eval-max-rows", help="Seeded subset of each eval file.", rich_help_panel=_RUN),
    keep_state: Optional[bool] = typer.Option(None, "--keep-state/--drop-state", help="Keep the last resume state after finishing.", rich_help_panel=_RUN),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar.", rich_help_panel=_RUN),
) -> None:
    """Fine-tune an encoder on English task data with the SPEC §3 objectives (resumable)."""
    from alignkit.train.trainer import TrainConfig, load_toml, train, train_probe

    given = {k: v for k, v in dict(
        model=model, task=task, train_file=train_file, dev_file=dev_file, dev_fraction=dev_fraction, dev_seed=dev_seed,
        attention_dropout=attention_dropout,
        max_train_rows=max_train_rows, out=out, variant=variant, weights=weights, epochs=epochs,
        max_steps=max_steps, lr=lr, embedding_lr=embedding_lr, weight_decay=weight_decay,
        warmup_ratio=warmup_ratio, batch_size=batch_size, grad_accum=grad_accum, max_length=max_length,
        clip=clip, seed=seed, eval_every=eval_every, save_every=save_every, embeddings=embeddings,
        device=device, epsilon=epsilon, perturbation=perturbation, pgd_steps=pgd_steps,
        pgd_step_size=pgd_step_size, rt_kl=rt_kl, ept_margin=ept_margin, ept_anchor=ept_anchor,
        apt_layers=apt_layers, cl_view=cl_view, cl_layer=cl_layer, cl_tau=cl_tau, vrn_delta=vrn_delta,
        codeswitch_lexicons=codeswitch_lexicons, codeswitch_prob=codeswitch_prob,
        rsda_copies=rsda_copies, wordnet_dir=wordnet_dir, eval_data=eval_data,
        eval_langs=eval_langs, eval_split=eval_split, eval_max_rows=eval_max_rows, keep_state=keep_state,
    ).items() if v is not None}
    values: dict = {}
    source = "options"
    if config is not None:
        values = load_toml(config)
        source = f"config {config}"
        nested = values.pop("objective", {}) or {}
        values.update(nested if isinstance(nested, dict) else {"objective": nested})
        values = {str(k).replace("-", "_"): v for k, v in values.items()}
    values.update(given)
    cfg = TrainConfig.from_mapping(values, source=source)
    if cfg.variant == "probe":
        res = train_probe(cfg, progress=not quiet)
    else:
        res = train(cfg, progress=not quiet)
    if not res.is_main:
        return
    zs = "".join(f", {r['pair']} {r['value']:.4f}" for r in res.rows)
    typer.echo(f"{res.out}\tbest English dev accuracy {res.best_dev_acc:.4f} at step {res.best_step}{zs}")


@app.command("eval-task")
def eval_task_cmd(
    ckpt: str = typer.Argument(..., help="Checkpoint written by `alignkit train`."),
    task: str = typer.Option("xnli", "--task", help="xnli | pawsx"),
    data: Optional[str] = typer.Option(None, "--data", help="Folder with {split}-{lang}.tsv (default $ALIGNKIT_DATA/<task>)."),
    langs: str = typer.Option("en,sw,ur", "--langs", help="Comma-separated languages."),
    out: Path = typer.Option(..., "--out", help="Output folder: results.csv, predictions-{lang}.tsv, manifest.json."),
    split: Optional[str] = typer.Option(None, "--split", help="test | dev (default: the split the "
                                         "checkpoint was not trained on: test-en -> dev)"),
    max_rows: Optional[int] = typer.Option(None, "--max-rows", help="Seeded subset of rows per language (same rows in each)."),
    batch_size: int = typer.Option(64, "--batch-size"),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Default: the training max length."),
    seed: int = typer.Option(0, "--seed", help="Seed of the --max-rows subset."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:N."),
) -> None:
    """Zero-shot accuracy of a fine-tuned checkpoint per language -> tidy results.csv (metric xnli_acc)."""
    import json
    import os
    import platform
    import sys

    from alignkit import __version__
    from alignkit.atomic import ensure_writable_dir, write_text
    from alignkit.errors import AlignkitError
    from alignkit.results.rows import to_frame, write_csv
    from alignkit.inputs.taskdata import get_task, zero_shot_split
    from alignkit.train.evaluate import evaluate_task, read_meta

    spec = get_task(task)
    if data is None:
        env = os.environ.get("ALIGNKIT_DATA")
        if not env:
            raise AlignkitError(f"no task data; pass --data DIR (the {spec.name} folder) or set ALIGNKIT_DATA")
        data = str(Path(env) / spec.name)
    lang_list = [x.strip() for x in langs.split(",") if x.strip()]
    out_dir = ensure_writable_dir(out)
    rows = evaluate_task(ckpt, spec.name, data, lang_list, split=split, max_rows=max_rows, batch_size=batch_size,
                         max_length=max_length, seed=seed, device=device, predictions_dir=out_dir)
    write_csv(to_frame(rows), out_dir / "results.csv")
    import torch
    import transformers

    write_text(out_dir / "manifest.json", json.dumps({
        "alignkit_version": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "command": sys.argv, "model": ckpt,
        "model_fingerprint": rows[0]["model_fingerprint"] if rows else "", "task": spec.name,
        "split": zero_shot_split((read_meta(ckpt).get("config") or {}).get("train_file") or "", split),
        "langs": lang_list, "max_rows": max_rows, "seed": seed}, indent=1))
    for r in rows:
        typer.echo(f"{r['pair']}\t{r['metric']}\t{r['value']:.4f}\t[{r['ci_low']:.4f}, {r['ci_high']:.4f}]\tn={r['n']}")

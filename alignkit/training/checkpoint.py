"""What a run writes: atomic directories, numbered resume states, the HF checkpoint, the manifest.

Layout of an output directory ``out`` (see docs/training.md):

* ``run_config.json`` -- the run's identity (settings that determine the weights) and whether
  it is trained / complete; a re-run with other settings is refused.
* ``state-{step:08d}/`` -- the last resume state: ``model.safetensors`` (classifier incl.
  encoder), ``optimizer.pt`` (AdamW, row-Adam, RNG states, tracked rows), ``trainer.json``.
* ``best-{step:08d}/`` -- the best English-dev model so far; at the end its files move to
  ``out`` itself: the encoder's ``save_pretrained`` files + ``classifier_head.safetensors``
  (``weight`` [C, H], ``bias`` [C]) + ``alignkit_train.json`` (meta).
* ``metrics.jsonl`` (per-step records), ``manifest.json`` (versions, seeds, lexicon hashes).

Every directory is written under a temporary name and renamed when complete, so an
interrupted save leaves nothing half-written.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from alignkit.atomic import write_text
from alignkit.errors import AlignkitError
from alignkit.inputs.finetuned import HEAD_FILE, META_FILE
from alignkit.training.model import save_encoder

RUN_FILE = "run_config.json"
METRICS_FILE = "metrics.jsonl"
STATE_PREFIX = "state-"
BEST_PREFIX = "best-"
TMP_PREFIX = ".tmp-alignkit-"


@contextlib.contextmanager
def atomic_dir(dest: Path):
    """Yield a temp dir next to ``dest``; on success it is renamed to ``dest`` (which must not exist)."""
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=dest.parent))
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def numbered(out: Path, prefix: str) -> list[tuple[int, Path]]:
    """The ``{prefix}{step}`` directories of ``out`` as sorted (step, path) pairs."""
    found = []
    for p in out.glob(prefix + "*"):
        tail = p.name[len(prefix):]
        if p.is_dir() and tail.isdigit():
            found.append((int(tail), p))
    return sorted(found)


def prune_numbered(out: Path, prefix: str, keep: int | None = None, above: int | None = None) -> None:
    """Delete ``{prefix}{step}`` dirs: all but step ``keep``, or (with ``above``) those past that step."""
    for s, p in numbered(out, prefix):
        if (above is not None and s > above) or (above is None and s != keep):
            shutil.rmtree(p, ignore_errors=True)


def trim_jsonl(path: Path, max_step: int) -> None:
    """Keep the records of ``path`` up to ``max_step`` (what a resumed run will not write again)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= max_step:
                keep.append(line)
        except ValueError:
            continue  # a line cut short by the interruption
    write_text(path, "".join(k + "\n" for k in keep))


# ----------------------------------------------------------------------------- run marker


def run_status(out: Path, identity: dict[str, Any]) -> tuple[str, dict | None]:
    """State of ``out`` (read only): ``new``, ``resume``, ``trained`` (checkpoint written, zero-shot
    evaluation pending) or ``complete``, with the saved meta for the last two.

    Raises AlignkitError when ``out`` holds a run with other settings than ``identity`` or a
    model this run did not write.
    """
    run_file = out / RUN_FILE
    if not run_file.is_file():
        if (out / "config.json").exists() or (out / META_FILE).exists():
            raise AlignkitError(f"output directory {out} already holds a model not written by this run; "
                                "pass a new or empty --out")
        return "new", None
    try:
        saved = json.loads(run_file.read_text())
    except ValueError:
        raise AlignkitError(f"{run_file} is corrupt; delete {out} or pass a new --out") from None
    theirs = saved.get("identity", {})
    if theirs != identity:
        diff = sorted(k for k in set(identity) | set(theirs) if identity.get(k) != theirs.get(k))
        raise AlignkitError(f"output directory {out} holds a run with different settings "
                            f"({', '.join(diff[:4])}); pass a new --out to start another run")
    if saved.get("trained") and (out / META_FILE).is_file():
        return ("complete" if saved.get("complete") else "trained"), json.loads((out / META_FILE).read_text())
    return "resume", None


def mark_run(out: Path, identity: dict[str, Any], trained: bool, complete: bool) -> None:
    write_text(out / RUN_FILE, json.dumps({"identity": identity, "trained": trained, "complete": complete}, indent=1))


# ----------------------------------------------------------------------------- checkpoints


def save_hf_checkpoint(dest: Path, clf, enc, meta: dict) -> None:
    """Write ``clf`` (a PairClassifier of ``enc``'s model) as a HuggingFace encoder dir +
    ``classifier_head.safetensors`` + meta JSON."""
    from safetensors.torch import save_file
    from transformers.utils import logging as hf_logging

    from alignkit.inputs.bundled import NORMALIZER_FILE

    hf_logging.disable_progress_bar()  # a one-shard "Writing model shards" bar is noise
    save_encoder(clf.encoder, dest, {"query_prefix": enc.query_prefix,
                                     "finetuned_from": str(meta.get("base_model", ""))})
    enc.tokenizer.save_pretrained(str(dest))
    norm = Path(enc.path) / NORMALIZER_FILE
    if norm.is_file():
        shutil.copyfile(norm, dest / NORMALIZER_FILE)
    save_file({k: v.detach().contiguous().cpu() for k, v in clf.head.state_dict().items()}, str(dest / HEAD_FILE))
    (dest / META_FILE).write_text(json.dumps(meta, indent=1))
    umask = os.umask(0)
    os.umask(umask)
    for f in dest.iterdir():  # safetensors writes 0600; a checkpoint is meant to be shared
        os.chmod(f, 0o666 & ~umask)


def save_best(out: Path, step: int, clf, enc, meta: dict) -> None:
    """Write ``best-{step}/`` and drop any other best dir."""
    with atomic_dir(out / f"{BEST_PREFIX}{step:08d}") as tmp:
        save_hf_checkpoint(tmp, clf, enc, meta)
    prune_numbered(out, BEST_PREFIX, keep=step)


def promote_best(out: Path) -> None:
    """Move the files of the (last) ``best-*`` dir to ``out`` itself and remove the dir."""
    bests = numbered(out, BEST_PREFIX)
    if not bests:
        raise AlignkitError(f"run in {out} has no best checkpoint; delete the folder and re-run")
    best_dir = bests[-1][1]
    for f in best_dir.iterdir():
        os.replace(f, out / f.name)
    shutil.rmtree(best_dir, ignore_errors=True)


def save_state(out: Path, step: int, state: dict, clf, opt, row_opt, tracker) -> None:
    """Write the resume state ``state-{step}/`` (unless it exists) and drop older ones."""
    from safetensors.torch import save_file

    dest = out / f"{STATE_PREFIX}{step:08d}"
    if dest.exists():
        return
    with atomic_dir(dest) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in clf.state_dict().items()}, str(tmp / "model.safetensors"))
        extra = {"optimizer": opt.state_dict(), "rng_cpu": torch.get_rng_state(), "touched": tracker.state()}
        if torch.cuda.is_available():
            extra["rng_cuda"] = torch.cuda.get_rng_state_all()
        if row_opt is not None:
            extra["rows"] = row_opt.state_dict()
        torch.save(extra, tmp / "optimizer.pt")
        (tmp / "trainer.json").write_text(json.dumps(state))
    prune_numbered(out, STATE_PREFIX, keep=step)


def load_state(path: Path, clf, opt, row_opt, device, tracker) -> dict:
    """Restore a resume state into the classifier, optimisers, tracker and RNGs -> its trainer.json."""
    from safetensors.torch import load_file

    try:
        weights = load_file(str(path / "model.safetensors"), device=str(device))
        extra = torch.load(path / "optimizer.pt", map_location=device, weights_only=True)
        state = json.loads((path / "trainer.json").read_text())
    except Exception as e:  # noqa: BLE001 - any unreadable piece means the state is unusable
        raise AlignkitError(f"cannot resume from {path} ({type(e).__name__}); delete that folder to "
                            "resume from scratch") from None
    with torch.no_grad():
        missing, unexpected = clf.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise AlignkitError(f"training state {path} does not match the model; delete it or pass a new --out")
    base = [g["base_lr"] for g in opt.param_groups]
    opt.load_state_dict(extra["optimizer"])
    for g, lr in zip(opt.param_groups, base):  # the learning rates are this run's, not the saved ones
        g["base_lr"] = lr
    if "touched" in extra:
        tracker.load_state(extra["touched"])
    if row_opt is not None and "rows" in extra:
        row_opt.load_state_dict(extra["rows"])
    torch.set_rng_state(extra["rng_cpu"].cpu())
    if "rng_cuda" in extra and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in extra["rng_cuda"]])
    return state


# ----------------------------------------------------------------------------- manifest


def rsda_source(cfg) -> dict | None:
    """Where RS-DA's synonyms came from (WordNet dir, word count), or None when the run has no RS-DA."""
    from alignkit.training.objectives import needs_of, resolve_variant

    if cfg.variant == "probe" or "synonym_copies" not in needs_of(resolve_variant(cfg.variant, cfg.weights), cfg.objective):
        return None
    from alignkit.training.synonyms import find_wordnet_dir, load_synonyms

    d = find_wordnet_dir(cfg.objective.wordnet_dir)
    return {"source": "WordNet 3.0", "dir": str(d), "words": len(load_synonyms(d))}


def write_manifest(out: Path, cfg, base_fingerprint: str) -> None:
    """``manifest.json``: versions, base-model fingerprint, seeds, lexicon hashes, command line."""
    from alignkit.results.manifest import run_manifest, write_manifest

    lex = {}
    if cfg.objective.cl_view == "codeswitch":
        try:
            from alignkit.inputs.lexicons import load_lexicon

            lex = {p: load_lexicon(p, split="train").sha256 for p in cfg.objective.codeswitch_lexicons}
        except AlignkitError:
            lex = {}
    write_manifest(out / "manifest.json", run_manifest(
        base_model=cfg.model, base_fingerprint=base_fingerprint, seed=cfg.seed, codeswitch_lexicons_sha256=lex,
        rsda_synonyms=rsda_source(cfg), config=cfg.to_dict()))


__all__ = ["RUN_FILE", "METRICS_FILE", "STATE_PREFIX", "BEST_PREFIX", "TMP_PREFIX", "atomic_dir", "numbered",
           "prune_numbered", "trim_jsonl", "run_status", "mark_run", "save_hf_checkpoint", "save_best",
           "promote_best", "save_state", "load_state", "rsda_source", "write_manifest"]

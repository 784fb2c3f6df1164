"""`score --executor ray` on a local Ray cluster (num_cpus=2, one per module): the same rows
as a local run, a worker killed mid-unit is retried, a failing unit is named in one line with
exit 2 and the other units' rows kept, and a re-run after the driver died runs only the
missing units."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from alignkit.cli import main  # noqa: E402
from alignkit.scoring import score  # noqa: E402
from tinymodels import tiny_bert  # noqa: E402

TESTS = Path(__file__).resolve().parent
EN_TR = "cat\tkedi\ndog\tköpek\nhouse\tev\nwater\tsu\nbig\tbüyük\nsmall\tküçük\nthe\tbir\nworld\tdünya\n" \
        "hello\tmerhaba\nwater\tsular\nis\tdır\non\tüstünde\n"
EN_DE = "cat\tkatze\ndog\thund\nhouse\thaus\nwater\twasser\nbig\tgroß\nsmall\tklein\nthe\tdie\nworld\twelt\n" \
        "hello\thallo\nis\tist\non\tauf\n"


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module; its workers can import tests/ray_faults.py."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS)] + ([old] if old else []))
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Two tiny checkpoints (``a``, ``b``), two lexicons, and the local run's results."""
    root = tmp_path_factory.mktemp("sweep")
    ckpts = [str(tiny_bert(root / "a", seed=0)), str(tiny_bert(root / "b", seed=1))]
    (root / "en-tr.test.tsv").write_text(EN_TR)
    (root / "en-de.test.tsv").write_text(EN_DE)
    pairs = [str(root / "en-tr.test.tsv"), str(root / "en-de.test.tsv")]
    opts = dict(pairs=pairs, pool_size=30, n_resamples=50, tsne_layers=[1])
    local = score(ckpts, out=root / "local", progress=False, cache_dir=str(root / "cache-local"), **opts)
    return root, ckpts, opts, local


def _cli_args(root, ckpts, out, cache, *extra):
    return ["score", *ckpts, "--pairs", f"{root}/en-tr.test.tsv,{root}/en-de.test.tsv", "--pool-size", "30",
            "--resamples", "50", "--tsne-layers", "1", "--cache-dir", str(cache), "--out", str(out), "--quiet", *extra]


def test_ray_run_writes_the_rows_values_and_item_scores_of_a_local_run(cluster, sweep):
    root, ckpts, opts, local = sweep
    out = root / "ray"
    assert main(_cli_args(root, ckpts, out, root / "cache-ray", "--executor", "ray")) == 0
    ray_rows = pd.read_csv(out / "results.csv")
    pd.testing.assert_frame_equal(ray_rows, pd.read_csv(root / "local" / "results.csv"))
    assert len(ray_rows) == len(local) and set(ray_rows["pair"]) == {"en-tr", "en-de"}
    assert ray_rows["model"].nunique() == 2
    items = sorted(p.relative_to(out) for p in (out / "items").rglob("*.npz"))
    assert items == sorted(p.relative_to(root / "local") for p in (root / "local" / "items").rglob("*.npz"))
    assert len(items) == 4
    for rel in items:
        with np.load(out / rel) as z, np.load(root / "local" / rel) as w:
            assert sorted(z) == sorted(w) and all(np.array_equal(z[k], w[k]) for k in z)
    assert sorted(p.name for p in out.glob("tsne_*.png")) == sorted(p.name for p in (root / "local").glob("tsne_*.png"))
    m = json.loads((out / "manifest.json").read_text())
    assert m["executor"]["name"] == "ray" and m["executor"]["resources"]["CPU"] == 2.0
    assert m["units"] == {"total": 4, "run": 4, "reused": 0}
    assert json.loads((root / "local" / "manifest.json").read_text())["executor"]["name"] == "local"
    assert not (out / "units").exists()  # the journal of a finished run is removed


def test_a_unit_whose_worker_is_killed_is_retried_and_the_run_completes(cluster, sweep):
    import ray_faults

    root, ckpts, opts, local = sweep
    marks = root / "cache-dies"
    marks.mkdir()
    (marks / "driver.pid").write_text(str(os.getpid()))
    ray_faults.register_dies_once()
    try:
        df = score(ckpts, out=root / "dies", progress=False, cache_dir=str(marks), executor="ray",
                   tasks=["lexicon-dies-once"], **opts)
    finally:
        from alignkit.tasks import TASKS

        TASKS.remove("lexicon-dies-once")
    tries = (marks / "tries.log").read_text().split()
    assert len(tries) == 2 and tries[0] != tries[1]  # killed once, then run again in a new worker process
    assert (marks / "died").read_text() == tries[0]
    pd.testing.assert_frame_equal(df, local)


def test_failing_units_are_named_in_one_line_exit_2_and_the_other_rows_are_kept(cluster, sweep):
    root, ckpts, opts, local = sweep
    bad = root / "bad"
    shutil.copytree(ckpts[1], bad)
    (bad / "model.safetensors").write_bytes(b"not a safetensors file")  # read by the units, not the driver
    out = root / "fails"
    env = {**os.environ, "RAY_ADDRESS": cluster}
    cmd = [str(Path(sys.executable).with_name("alignkit")), *_cli_args(root, [ckpts[0], str(bad)], out,
                                                                     root / "cache-fails", "--executor", "ray")]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: 2 of 4 units failed: "), p.stderr
    assert f"checkpoint {bad}, task lexicon" in lines[0] and "cannot load weights" in lines[0]
    assert "partial_results.csv" in lines[0] and "Traceback" not in p.stderr
    assert not (out / "results.csv").exists()
    kept = pd.read_csv(out / "partial_results.csv")
    pd.testing.assert_frame_equal(kept, pd.read_csv(root / "local" / "results.csv").query(f"model == '{ckpts[0]}'")
                                  .reset_index(drop=True))


def test_a_rerun_after_the_driver_died_runs_only_the_missing_units(cluster, sweep):
    root, ckpts, opts, local = sweep
    out, cache = root / "killed", root / "cache-killed"
    cache.mkdir()
    (cache / "block").write_text("")
    env = {**os.environ, "PYTHONPATH": str(TESTS), "RAY_ADDRESS": cluster}
    driver = subprocess.Popen(
        [sys.executable, "-c", "import sys, ray_faults; sys.exit(ray_faults.driver_with_a_hanging_unit(sys.argv[1:]))",
         *_cli_args(root, ckpts, out, cache, "--executor", "ray")], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while len(list((out / "units").glob("*/unit.json"))) < 3:
            assert driver.poll() is None and time.time() < deadline, "the driver ended before three units finished"
            time.sleep(0.2)
    finally:
        driver.kill()  # the driver dies with the fourth unit running
        driver.wait()
    assert len(list((out / "units").glob("*/unit.json"))) == 3 and not (out / "results.csv").exists()
    (cache / "block").unlink()
    assert main(_cli_args(root, ckpts, out, cache, "--executor", "ray")) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["units"] == {"total": 4, "run": 1, "reused": 3}
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), pd.read_csv(root / "local" / "results.csv"))


def test_executor_ray_without_ray_installed_is_a_one_line_error(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"  # as if the extra were not installed
            "from alignkit.cli import main\n"
            f"sys.exit(main(['score', '--pairs', 'en-tr', '--executor', 'ray', '--out', {str(tmp_path)!r}]))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == \
        ['error: --executor ray needs the Ray package; install it with pip install "alignkit[ray]"']


def test_an_unknown_executor_is_a_one_line_error(tmp_path):
    assert main(["score", "--pairs", "en-tr", "--executor", "dask", "--out", str(tmp_path)]) == 2


def _study_config(root: Path) -> Path:
    from test_study import EN, SW, _tsv

    tiny_bert(root / "tiny")
    data = root / "xnli"
    data.mkdir()
    _tsv(data / "train-en.tsv", EN, 48)
    _tsv(data / "test-en.tsv", EN, 12)
    _tsv(data / "test-sw.tsv", SW, 12)
    (root / "en-sw.test.tsv").write_text("cat\tpaka\ndog\tmbwa\nhouse\tnyumba\nwater\tmaji\nbig\tmkubwa\n"
                                         "small\tmdogo\nhello\thabari\nworld\tdunia\nthe\tya\nis\tni\non\tjuu\n")
    (root / "study.toml").write_text(f"""
[study]
base_model = "{root / 'tiny'}"
variants = ["ft", "rt+cl"]
seeds = [1, 2]
pairs = ["{root / 'en-sw.test.tsv'}"]
layers = "all"
pool_size = 0
baselines = ["ft"]
score_resamples = 20
compare_resamples = 50
device = "cpu"
train_workers = 1

[train]
train_file = "xnli/train-en.tsv"
max_steps = 2
batch_size = 8
max_length = 16
dev_fraction = 0.25

[eval]
data = "xnli"
langs = ["en", "sw"]
""")
    return root / "study.toml"


def test_a_miniature_study_on_ray_gives_the_comparison_of_a_local_one(cluster, tmp_path):
    config = _study_config(tmp_path)
    assert main(["study", str(config), "--out", str(tmp_path / "local"), "--quiet"]) == 0
    assert main(["study", str(config), "--out", str(tmp_path / "ray"), "--executor", "ray", "--quiet"]) == 0
    for name in ("comparison.csv", "results.csv"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert len(pd.read_csv(tmp_path / "ray" / "comparison.csv")) > 0
    used = json.loads((tmp_path / "ray" / "executor.json").read_text())
    assert used["name"] == "ray" and used["resources"]["CPU"] == 2.0 and len(used["runs"]) == 6
    # a re-run finds every run finished and trains nothing
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "runs").rglob("results.csv")}
    assert main(["study", str(config), "--out", str(tmp_path / "ray"), "--executor", "ray", "--quiet"]) == 0
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "ray" / "runs").rglob("results.csv")} == stamp


def test_a_gpu_run_on_a_cluster_without_gpus_is_a_one_line_error(cluster, sweep, capsys):
    root, ckpts, opts, local = sweep
    # the driver itself has no GPU either: it only reads the checkpoints' configs
    assert main(_cli_args(root, ckpts[:1], root / "gpu", root / "cache-gpu", "--executor", "ray",
                          "--device", "cuda")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --device cuda needs a GPU but the ray cluster has none; pass --device cpu or add GPU "
                   "nodes to the cluster"]


def test_a_unit_whose_worker_dies_on_every_try_is_named_and_the_others_are_kept(cluster, sweep):
    import ray_faults
    from alignkit.errors import AlignkitError
    from alignkit.executors.ray_cluster import RayExecutor

    root, ckpts, opts, local = sweep
    marks = root / "cache-dies-always"
    marks.mkdir()
    (marks / "driver.pid").write_text(str(os.getpid()))
    out = root / "dies-always"
    ray_faults.register_dies_once()
    try:  # no retry: the one death is every try this unit gets
        with pytest.raises(AlignkitError) as e:
            score(ckpts, out=out, progress=False, cache_dir=str(marks), executor=RayExecutor(max_retries=0),
                  tasks=["lexicon-dies-once"], **opts)
    finally:
        from alignkit.tasks import TASKS

        TASKS.remove("lexicon-dies-once")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"1 of 4 units failed: checkpoint {ckpts[1]}, task lexicon-dies-once, "
                                              "en-de.test.tsv: its worker process died (1 try): ")
    kept = pd.read_csv(out / "partial_results.csv")
    expected = pd.read_csv(root / "local" / "results.csv")
    expected = expected[~((expected["model"] == ckpts[1]) & (expected["pair"] == "en-de"))].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, expected)


def test_an_unreachable_ray_address_is_a_one_line_error_at_once(tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.time()
    p = subprocess.run([str(Path(sys.executable).with_name("alignkit")), "score", "--pairs", "en-tr", "--executor",
                        "ray", "--ray-address", f"127.0.0.1:{port}", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot reach the Ray cluster at 127.0.0.1:{port} "), p.stderr
    assert time.time() - t < 60  # not Ray's minutes of retries


def test_a_ray_address_without_the_ray_executor_is_a_one_line_error(tmp_path, capsys):
    assert main(["score", "--pairs", "en-tr", "--ray-address", "10.0.0.1:6379", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: --ray-address needs --executor ray (the local executor connects to no cluster)"]

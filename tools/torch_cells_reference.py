#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for unfold's cells that PyTorch has no module for.

Each cell is written the obvious way, a Python loop over time steps on fixed weights:

    leaky       u = tanh(W x + U h + b), h' = (1 - a) h + a u, a = 1 / (1 + rho^2) per unit
    deep        z1 = tanh(W x + U h + b1), z_j = tanh(V_j z_(j-1) + b_j), h' = z_k
                (+ S h inside the last tanh with the shortcut: the DT(S)-RNN)
    delay       h' = tanh(W x + sum_d U_d h(t - d) + b)
    clockwork   h'_m = tanh(W_m x + U_m h + b_m) for modules m with t mod T_m == 0, else h_m;
                U block upper triangular (module m reads modules m..)
    tdnn        h(t) = tanh(sum_k W_k x(t - k d) + b), as torch.nn.functional.conv1d with
                (taps - 1) d zeros of left padding (a whole-sequence convolution, no loop)

over a ragged batch (a sequence past its length keeps its state and outputs zero, as PyTorch's
packed sequences do), then backward of

    loss = sum(out * dout) + sum(h_n * dh_n) [+ sum(e_n * de_n)]

where e is the cell's extra state (a delay cell's older outputs). Saved with safetensors:

    rnn.<name>_l0          the weights, named as unfold names them
    x, h0, e0, dout, dh_n, de_n, lengths (float)
    out, h_n, e_n          forward results
    grad.<name>_l0         parameter gradients
    dx, dh0, de0           input and initial-state gradients

and metadata `cell` (unfold's serialised CellKind), sizes and the torch version. Run from the
repository root:

    python3 tools/torch_cells_reference.py crates/unfold/tests/fixtures/cells
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file

I, T, B = 3, 9, 4
LENGTHS = [9, 5, 7, 1]


def uniform(shape, k, g):
    return ((torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * k).float()


def leaky_cell(H, g):
    k = 1 / H**0.5
    p = {
        "weight_ih": uniform((H, I), k, g),
        "weight_hh": uniform((H, H), k, g),
        "bias": uniform((H,), k, g),
        "leak_rho": uniform((H,), 1.0, g) + 1.5,
    }

    def step(p, x, h, e, t):
        a = 1 / (1 + p["leak_rho"] ** 2)
        u = torch.tanh(x @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias"])
        return (1 - a) * h + a * u, e

    cell = {"Leaky": {"min": 0.1, "max": 0.9, "learn": True}}
    return cell, p, step, 0


def deep_cell(H, depth, shortcut, g):
    k = 1 / H**0.5
    p = {"weight_ih": uniform((H, I), k, g), "weight_hh": uniform((H, H), k, g)}
    for j in range(2, depth + 1):
        p[f"weight_l{j}"] = uniform((H, H), k, g)
    if shortcut:
        p["weight_skip"] = uniform((H, H), k, g)
    p["bias"] = uniform((H,), k, g)
    for j in range(2, depth + 1):
        p[f"bias_l{j}"] = uniform((H,), k, g)

    def step(p, x, h, e, t):
        z = torch.tanh(x @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias"])
        for j in range(2, depth + 1):
            pre = z @ p[f"weight_l{j}"].T + p[f"bias_l{j}"]
            if j == depth and shortcut:
                pre = pre + h @ p["weight_skip"].T
            z = torch.tanh(pre)
        return z, e

    cell = {"DeepTransition": {"depth": depth, "shortcut": shortcut}}
    return cell, p, step, 0


def delay_cell(H, delays, g):
    k = 1 / H**0.5
    kr = 1 / (H * len(delays)) ** 0.5
    p = {"weight_ih": uniform((H, I), k, g)}
    for d in delays:
        p[f"weight_hh_d{d}"] = uniform((H, H), kr, g)
    p["bias"] = uniform((H,), k, g)
    D = max(delays)

    def step(p, x, h, e, t):
        # The state: h = h(t-1), e = [h(t-2) | ... | h(t-D)] per row.
        hist = [h] + [e[:, i * H:(i + 1) * H] for i in range(D - 1)]
        pre = x @ p["weight_ih"].T + p["bias"]
        for d in delays:
            pre = pre + hist[d - 1] @ p[f"weight_hh_d{d}"].T
        hn = torch.tanh(pre)
        en = torch.cat(hist[:-1], dim=1) if D > 1 else e
        return hn, en

    cell = {"Delay": {"delays": delays}}
    return cell, p, step, (D - 1) * H


def clockwork_cell(H, periods, g):
    k = 1 / H**0.5
    M = len(periods)
    starts = [m * H // M for m in range(M)] + [H]
    mask = torch.zeros(H, H)
    for m in range(M):
        mask[starts[m]:starts[m + 1], starts[m]:] = 1
    p = {
        "weight_ih": uniform((H, I), k, g),
        "weight_hh": uniform((H, H), k, g) * mask,
        "bias": uniform((H,), k, g),
    }

    def step(p, x, h, e, t):
        pre = x @ p["weight_ih"].T + h @ (p["weight_hh"] * mask).T + p["bias"]
        tick = torch.zeros(H, dtype=torch.bool)
        for m in range(M):
            if t % periods[m] == 0:
                tick[starts[m]:starts[m + 1]] = True
        return torch.where(tick, torch.tanh(pre), h), e

    cell = {"Clockwork": {"periods": periods}}
    # The phases are state, but not differentiable: start them at zero, compare no gradient.
    return cell, p, step, M


def tdnn_cell(H, taps, dilation, g):
    k = 1 / (taps * I) ** 0.5
    p = {"weight": uniform((taps, H, I), k, g), "bias": uniform((H,), k, g)}

    def whole(p, x):
        # torch.nn.functional.conv1d over [B, I, T] with (taps - 1) * dilation zeros on the
        # left; Conv1d's kernel runs oldest tap first, so unfold's tap k is index taps - 1 - k.
        w = p["weight"].flip(0).permute(1, 2, 0)  # [H, I, taps]
        xs = torch.nn.functional.pad(x.permute(1, 2, 0), ((taps - 1) * dilation, 0))
        y = torch.nn.functional.conv1d(xs, w, p["bias"], dilation=dilation)
        return torch.tanh(y).permute(2, 0, 1)  # [T, B, H]

    cell = {"Tdnn": {"taps": taps, "dilation": dilation}}
    # The delay lines are state (zero: the zero padding), compared through the outputs only.
    return cell, p, whole, (taps - 1) * dilation * H


def fixture(name, made, H, seed):
    cell, params, step, extra = made
    whole = "Tdnn" in cell
    torch.manual_seed(seed)
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    x = torch.randn(T, B, I, requires_grad=True)
    h0 = torch.randn(B, H, requires_grad=True)
    clock = "Clockwork" in cell or whole
    e0 = (torch.zeros(B, extra) if clock else torch.randn(B, extra)).requires_grad_(not clock)
    dout = torch.randn(T, B, H)
    dh_n = torch.randn(B, H)
    de_n = torch.randn(B, extra)
    lengths = torch.tensor(LENGTHS)
    h, e, outs = h0, e0, []
    ys = step(params, x) if whole else None
    for t in range(T):
        hn, en = (ys[t], e) if whole else step(params, x[t], h, e, t)
        live = (t < lengths).unsqueeze(1)
        h = torch.where(live, hn, h)
        e = torch.where(live, en, e) if extra and not clock else e
        outs.append(torch.where(live, hn, torch.zeros_like(hn)))
    out = torch.stack(outs)
    loss = (out * dout).sum() + (h * dh_n).sum()
    if extra and not clock:
        loss = loss + (e * de_n).sum()
    loss.backward()
    t = {}
    for k, v in params.items():
        t[f"rnn.{k}_l0"] = v.detach().clone().contiguous()
        t[f"grad.{k}_l0"] = v.grad.detach().clone().contiguous()
    t["x"], t["h0"], t["dout"], t["dh_n"] = x.detach(), h0.detach(), dout, dh_n
    t["lengths"] = lengths.float()
    t["out"], t["h_n"] = out.detach().contiguous(), h.detach().contiguous()
    t["dx"], t["dh0"] = x.grad.detach(), h0.grad.detach()
    if extra:
        t["e0"] = e0.detach().contiguous()
        if not clock:
            t["de_n"], t["e_n"] = de_n, e.detach().contiguous()
            t["de0"] = e0.grad.detach()
    meta = {
        "cell": json.dumps(cell),
        "input_size": str(I),
        "hidden_size": str(H),
        "steps": str(T),
        "batch": str(B),
        "torch_version": torch.__version__,
    }
    return t, meta


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "crates/unfold/tests/fixtures/cells"
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    cells = [
        ("leaky", leaky_cell(5, g), 5),
        ("deep3_shortcut", deep_cell(5, 3, True, g), 5),
        ("deep2", deep_cell(5, 2, False, g), 5),
        ("delay_1_3", delay_cell(5, [1, 3], g), 5),
        ("delay_2", delay_cell(5, [2], g), 5),
        ("clockwork_1_2_4", clockwork_cell(6, [1, 2, 4], g), 6),
        ("tdnn_3_d2", tdnn_cell(5, 3, 2, g), 5),
    ]
    for seed, (name, made, H) in enumerate(cells):
        t, meta = fixture(name, made, H, seed)
        save_file(t, os.path.join(outdir, name + ".safetensors"), metadata=meta)
    with open(os.path.join(outdir, "README.md"), "w") as f:
        f.write(
            "# PyTorch reference fixtures for unfold's own cells\n\n"
            f"Made by `python3 tools/torch_cells_reference.py {outdir}` with torch "
            f"{torch.__version__} (CPU, float32, 1 thread): each cell written as a loop over "
            f"time steps in PyTorch. Input {I}, steps {T}, batch {B}, lengths {LENGTHS}.\n\n"
            "Files: " + ", ".join(f"`{n}`" for n, _, _ in cells) + "\n"
        )
    print(json.dumps({"fixtures": len(cells), "torch": torch.__version__}))


if __name__ == "__main__":
    main()

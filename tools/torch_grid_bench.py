#!/usr/bin/env python3
"""PyTorch side of `unfold bench --grids`: the same four-sweep 2-D layer (MD-RNN / MDLSTM,
unfold's weight layout, sweeps concatenated), the same JSON lines, two ways.

    python3 tools/torch_grid_bench.py [--threads N] [--config NAME ...] [--mode M ...]
                                      [--seconds S] [--way position|wavefront ...]

  position   the obvious one: per sweep, a Python loop over the positions in the sweep's
             order, each position one matrix product over the batch of images;
  wavefront  the best vectorised version I could write: the four sweeps flipped into one
             [4, B, H, W, C] tensor, one einsum for every input projection, then one bmm per
             anti-diagonal for all positions of that diagonal in all sweeps and images, the
             predecessors gathered from the previous diagonal by indexing (no in-place writes,
             as autograd needs), the output assembled with one gather at the end.

Train = forward + backward of loss = sum(out * dout) over the whole feature map (no
optimizer); infer = forward under torch.inference_mode(). float32, median of repeated runs
after a warm-up. Prints one JSON line per measurement with "way" added ("torch-position" or
"torch-wavefront").
"""
import argparse
import json
import statistics
import time

import torch

CONFIGS = [
    ("mdlstm-8x8-h32-b32", "lstm", 8, 1, 32, 32),
    ("mdlstm-8x8-h32-b1", "lstm", 8, 1, 32, 1),
    ("mdrnn-8x8-h32-b32", "rnn", 8, 1, 32, 32),
    ("mdlstm-16x16-h64-b16", "lstm", 16, 3, 64, 16),
    ("mdlstm-32x32-h32-b16", "lstm", 32, 3, 32, 16),
]
FLIPS = [(False, False), (False, True), (True, False), (True, True)]


def median_time(f, min_reps, min_secs):
    f()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_secs:
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def cell_step(cell, z, cv, ch, H):
    if cell == "rnn":
        return torch.tanh(z), None
    s = torch.sigmoid(z[..., :3 * H])
    i, fv, fh = s[..., :H], s[..., H:2 * H], s[..., 2 * H:]
    g = torch.tanh(z[..., 3 * H:4 * H])
    o = torch.sigmoid(z[..., 4 * H:])
    c = i * g + fv * cv + fh * ch
    return o * torch.tanh(c), c


class Layer:
    def __init__(self, cell, side, C, H, B, requires_grad):
        g = torch.Generator().manual_seed(0)
        G = 1 if cell == "rnn" else 5
        k = 1 / H**0.5

        def u(*shape):
            t = (torch.rand(*shape, generator=g) * 2 - 1) * k
            return t.requires_grad_(requires_grad)

        self.cell, self.side, self.C, self.H, self.B, self.G = cell, side, C, H, B, G
        self.w_ih = u(4, G * H, C)
        self.w_hh = u(4, G * H, 2 * H)
        self.b = u(4, G * H)
        self.x = torch.rand(B, side, side, C, generator=g) * 2 - 1
        self.dout = torch.rand(B, side, side, 4 * H, generator=g) * 2 - 1
        self.params = [self.w_ih, self.w_hh, self.b]
        # The wavefront's index tables: positions of each diagonal in sweep coordinates.
        n = side
        self.diags = []
        for d in range(2 * n - 1):
            lo, hi = max(0, d - (n - 1)), min(d, n - 1)
            rows = list(range(lo, hi + 1))
            self.diags.append((lo, rows))
        order = [i * n + (d - i) for d, (lo, rows) in enumerate(self.diags) for i in rows]
        inv = [0] * (n * n)
        for r, p in enumerate(order):
            inv[p] = r
        self.inv = torch.tensor(inv)

    def position(self):
        """Per sweep, position by position in the sweep's order."""
        n, H = self.side, self.H
        zero = torch.zeros(self.B, H)
        outs = []
        for s, (fr, fc) in enumerate(FLIPS):
            rows = list(range(n))[::-1] if fr else list(range(n))
            cols = list(range(n))[::-1] if fc else list(range(n))
            hs, cs = {}, {}
            px = torch.einsum("bijc,gc->bijg", self.x, self.w_ih[s]) + self.b[s]
            for a, i in enumerate(rows):
                for k, j in enumerate(cols):
                    hv = hs[(rows[a - 1], j)] if a > 0 else zero
                    hh = hs[(i, cols[k - 1])] if k > 0 else zero
                    cv = cs.get((rows[a - 1], j), zero) if a > 0 else zero
                    ch = cs.get((i, cols[k - 1]), zero) if k > 0 else zero
                    z = px[:, i, j] + torch.cat([hv, hh], 1) @ self.w_hh[s].T
                    hs[(i, j)], c = cell_step(self.cell, z, cv, ch, H)
                    if c is not None:
                        cs[(i, j)] = c
            grid = torch.stack([torch.stack([hs[(i, j)] for j in range(n)], 1) for i in range(n)], 1)
            outs.append(grid)
        return torch.cat(outs, -1)

    def wavefront(self):
        """All four sweeps and all images of one anti-diagonal at once."""
        n, H, B, G = self.side, self.H, self.B, self.G
        # Each sweep's view flipped so that it runs from the top-left: [4, B, n, n, C].
        xs = torch.stack([self.x.flip(*[d for d, f in zip((1, 2), fl) if f]) if any(fl) else self.x
                          for fl in FLIPS])
        px = torch.einsum("sbijc,sgc->sbijg", xs, self.w_ih) + self.b[:, None, None, None, :]
        zero = torch.zeros(4, B, 1, H)
        h_prev = c_prev = None
        hs = []
        for d, (lo, rows) in enumerate(self.diags):
            L = len(rows)
            ii = torch.tensor(rows)
            z = px[:, :, ii, d - ii]  # [4, B, L, G H]
            if d == 0:
                hv = hh = cv = ch = torch.zeros(4, B, L, H)
            else:
                plo = self.diags[d - 1][0]
                # Previous diagonal padded with a zero state at both ends: up = row i - 1,
                # left = row i (zero where the neighbour is off the grid).
                hp = torch.cat([zero, h_prev, zero], 2)
                up = ii - 1 - plo + 1
                left = ii - plo + 1
                up = torch.where(ii >= 1, up, torch.zeros_like(up))
                left = torch.where(ii < d, left, torch.full_like(left, hp.shape[2] - 1))
                hv, hh = hp[:, :, up], hp[:, :, left]
                if self.cell == "lstm":
                    cp = torch.cat([zero, c_prev, zero], 2)
                    cv, ch = cp[:, :, up], cp[:, :, left]
                else:
                    cv = ch = None
                rec = torch.bmm(torch.cat([hv, hh], -1).reshape(4, B * L, 2 * H),
                                self.w_hh.transpose(1, 2)).reshape(4, B, L, G * H)
                z = z + rec
            h_prev, c_prev = cell_step(self.cell, z, cv, ch, H)
            hs.append(h_prev)
        flat = torch.cat(hs, 2)[:, :, self.inv].reshape(4, B, n, n, H)  # sweep coordinates
        outs = [flat[s].flip(*[d for d, f in zip((1, 2), fl) if f]) if any(fl) else flat[s]
                for s, fl in enumerate(FLIPS)]
        return torch.cat(outs, -1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--mode", action="append", default=[])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--way", action="append", default=[])
    ap.add_argument("--check", action="store_true", help="check the two ways agree, then exit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ways = a.way or ["position", "wavefront"]
    for name, cell, side, C, H, B in CONFIGS:
        if a.config and name not in a.config:
            continue
        if a.check:
            lay = Layer(cell, side, C, H, B, False)
            with torch.inference_mode():
                p, w = lay.position(), lay.wavefront()
            print(name, "max |position - wavefront| =", (p - w).abs().max().item())
            continue
        for mode in ["train", "infer"]:
            if a.mode and mode not in a.mode:
                continue
            for way in ways:
                lay = Layer(cell, side, C, H, B, mode == "train")
                f = getattr(lay, way)
                if mode == "train":
                    def run():
                        for p in lay.params:
                            p.grad = None
                        (f() * lay.dout).sum().backward()
                else:
                    def run():
                        with torch.inference_mode():
                            f()
                secs = median_time(run, 5, a.seconds)
                print(json.dumps({
                    "config": name, "mode": mode, "images_per_s": round(B / secs, 1),
                    "ms_per_batch": round(secs * 1e3, 3), "threads": a.threads,
                    "way": "torch-" + way,
                }), flush=True)


if __name__ == "__main__":
    main()

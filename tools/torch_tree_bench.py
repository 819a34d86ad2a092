#!/usr/bin/env python3
"""PyTorch side of `unfold bench --trees`: the same trees, the same JSON lines, two ways.

    python3 tools/torch_tree_bench.py [--threads N] [--config NAME ...] [--mode M ...]
                                      [--seconds S] [--way node|level ...]

The trees are rebuilt exactly as crates/unfold/src/bench/trees.rs builds them. Two versions of
each composition (binary Tree-LSTM, child-sum Tree-LSTM, binary TreeRNN; unfold's layouts):

  node    the obvious one: a Python recursion, one node at a time (matrix-vector products);
  level   dynamic batching by hand: the nodes of all trees grouped by height, each level one
          matrix product over the whole batch, states gathered with index_select and written
          with index_copy (out of place, as autograd needs).

Train = forward + backward of loss = sum(h * dh) over every node's state (no optimizer);
infer = forward under torch.inference_mode(). float32, median of repeated runs after a warm-up.
Prints one JSON line per measurement with "way" added ("torch-node" or "torch-level").
"""
import argparse
import json
import statistics
import time

import torch

CONFIGS = [
    ("treelstm-binary-h128-b32", "lstm", "nary", "binary", 128, 32),
    ("treelstm-binary-h128-b1", "lstm", "nary", "binary", 128, 1),
    ("treelstm-sum-h128-b32", "lstm", "sum", "dependency", 128, 32),
    ("treernn-binary-h128-b32", "rnn", "nary", "binary", 128, 32),
    ("treelstm-binary-h256-b64", "lstm", "nary", "binary", 256, 64),
]


def words_of(j):
    return 10 + (7 * j) % 21


def binary(n, salt, nodes):
    if n == 1:
        nodes.append([])
        return len(nodes) - 1
    k = 1 + (7 * n + 3 * salt) % (n - 1)
    left = binary(k, salt + 1, nodes)
    right = binary(n - k, salt + 2, nodes)
    nodes.append([left, right])
    return len(nodes) - 1


def children_of(shape, j):
    n = words_of(j)
    if shape == "binary":
        nodes = []
        binary(n, 0, nodes)
        return nodes
    kids = [[] for _ in range(n)]
    for i in range(1, n):
        kids[(5 * i + 3) % i].append(i)
    return [[n - 1 - c for c in reversed(kids[w])] for w in reversed(range(n))]


def median_time(f, min_reps, min_secs):
    f()
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < min_secs:
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Setup:
    def __init__(self, cell, children, shape, H, B):
        g = torch.Generator().manual_seed(0)
        self.cell, self.children, self.H = cell, children, H
        gx = 1 if cell == "rnn" else 4
        k = 2 if children == "nary" else 1
        gh = 1 if cell == "rnn" else (4 if children == "sum" else k + 3)
        s = 1 / H**0.5
        u = lambda *sh: ((torch.rand(*sh, generator=g) * 2 - 1) * s).requires_grad_()
        self.w_ih, self.w_hh, self.b = u(gx * H, H), u(gh * H, k * H), u(gx * H)
        self.trees = [children_of(shape, j) for j in range(B)]
        self.inputs = [[(len(c) == 0 or shape == "dependency") for c in t] for t in self.trees]
        self.x = [torch.rand(len(t), H, generator=g) * 2 - 1 for t in self.trees]
        self.dh = [torch.rand(len(t), H, generator=g) * 2 - 1 for t in self.trees]
        self.nodes = sum(len(t) for t in self.trees)
        self._levels()

    def params(self):
        return [self.w_ih, self.w_hh, self.b]

    # ---- one node at a time ----
    def node_state(self, px, kids):
        H = self.H
        zero = torch.zeros(H)
        if self.children == "nary":
            hs = torch.cat([k[0] for k in kids] + [zero] * (2 - len(kids)))
        else:
            hs = sum((k[0] for k in kids), zero)
        if self.cell == "rnn":
            return torch.tanh(px + self.w_hh @ hs), None
        if self.children == "sum":
            r = self.w_hh @ hs
            i = torch.sigmoid(px[:H] + r[:H])
            gg = torch.tanh(px[2 * H:3 * H] + r[2 * H:3 * H])
            o = torch.sigmoid(px[3 * H:] + r[3 * H:])
            c = i * gg
            for kh, kc in kids:
                c = c + torch.sigmoid(px[H:2 * H] + self.w_hh[H:2 * H] @ kh) * kc
            return o * torch.tanh(c), c
        r = self.w_hh @ hs
        i = torch.sigmoid(px[:H] + r[:H])
        gg = torch.tanh(px[2 * H:3 * H] + r[3 * H:4 * H])
        o = torch.sigmoid(px[3 * H:] + r[4 * H:])
        c = i * gg
        for slot, (kh, kc) in enumerate(kids):
            c = c + torch.sigmoid(px[H:2 * H] + r[(1 + slot) * H:(2 + slot) * H]) * kc
        return o * torch.tanh(c), c

    def forward_node(self):
        out = []
        for t, inp, x in zip(self.trees, self.inputs, self.x):
            memo = {}

            def state(i):
                kids = [state(c) for c in t[i]]
                px = (self.w_ih @ x[i] if inp[i] else 0) + self.b
                memo[i] = self.node_state(px, kids)
                return memo[i]

            state(len(t) - 1)
            out.append(torch.stack([memo[i][0] for i in range(len(t))]))
        return out

    # ---- level-batched ----
    def _levels(self):
        offs, heights = [], []
        off = 0
        for t in self.trees:
            h = []
            for c in t:
                h.append(1 + max(h[k] for k in c) if c else 0)
            offs.append(off)
            heights.append(h)
            off += len(t)
        L = max(max(h) for h in heights) + 1
        N = self.nodes
        zero = N  # index of an all-zero row
        self.levels = []
        for lv in range(L):
            idx, kid, kid_flat, parent_of_kid = [], [], [], []
            for t, h, o in zip(self.trees, heights, offs):
                for i, c in enumerate(t):
                    if h[i] != lv:
                        continue
                    row = len(idx)
                    idx.append(o + i)
                    if self.children == "nary":
                        kid.append([o + k for k in c] + [zero] * (2 - len(c)))
                    for k in c:
                        kid_flat.append(o + k)
                        parent_of_kid.append(row)
            self.levels.append((torch.tensor(idx), torch.tensor(kid, dtype=torch.long),
                                torch.tensor(kid_flat, dtype=torch.long),
                                torch.tensor(parent_of_kid, dtype=torch.long)))
        self.x_all = torch.cat(self.x)
        self.has_in = torch.tensor([v for inp in self.inputs for v in inp], dtype=torch.float32)[:, None]
        self.dh_all = torch.cat(self.dh)

    def forward_level(self):
        H, N = self.H, self.nodes
        px_all = (self.x_all * self.has_in) @ self.w_ih.T + self.b
        h = torch.zeros(N + 1, H)
        c = torch.zeros(N + 1, H) if self.cell == "lstm" else None
        for lv, (idx, kid, kid_flat, pok) in enumerate(self.levels):
            px = px_all[idx]
            m = len(idx)
            if self.children == "nary":
                hs = h[kid.reshape(-1)].reshape(m, -1) if lv > 0 else torch.zeros(m, 2 * H)
            else:
                hs = torch.zeros(m, H).index_add(0, pok, h[kid_flat]) if lv > 0 else torch.zeros(m, H)
            if self.cell == "rnn":
                h = h.index_copy(0, idx, torch.tanh(px + hs @ self.w_hh.T))
                continue
            r = hs @ self.w_hh.T
            if self.children == "sum":
                i = torch.sigmoid(px[:, :H] + r[:, :H])
                gg = torch.tanh(px[:, 2 * H:3 * H] + r[:, 2 * H:3 * H])
                o = torch.sigmoid(px[:, 3 * H:] + r[:, 3 * H:])
                cn = i * gg
                if lv > 0:
                    f = torch.sigmoid(px[pok, H:2 * H] + h[kid_flat] @ self.w_hh[H:2 * H].T)
                    cn = cn.index_add(0, pok, f * c[kid_flat])
            else:
                i = torch.sigmoid(px[:, :H] + r[:, :H])
                gg = torch.tanh(px[:, 2 * H:3 * H] + r[:, 3 * H:4 * H])
                o = torch.sigmoid(px[:, 3 * H:] + r[:, 4 * H:])
                cn = i * gg
                if lv > 0:
                    ck = c[kid.reshape(-1)].reshape(m, 2, H)
                    f1 = torch.sigmoid(px[:, H:2 * H] + r[:, H:2 * H])
                    f2 = torch.sigmoid(px[:, H:2 * H] + r[:, 2 * H:3 * H])
                    cn = cn + f1 * ck[:, 0] + f2 * ck[:, 1]
            c = c.index_copy(0, idx, cn)
            h = h.index_copy(0, idx, o * torch.tanh(cn))
        return h[:N]


def check_same(s):
    """The two versions agree (so they time the same computation)."""
    with torch.no_grad():
        a = torch.cat(s.forward_node())
        b = s.forward_level()
    assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--mode", action="append", default=[])
    ap.add_argument("--way", action="append", default=[])
    ap.add_argument("--seconds", type=float, default=1.0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name, cell, children, shape, H, B in CONFIGS:
        if a.config and name not in a.config:
            continue
        s = Setup(cell, children, shape, H, B)
        check_same(s)
        for way in ["node", "level"]:
            if a.way and way not in a.way:
                continue
            fwd = s.forward_node if way == "node" else s.forward_level
            for mode in ["train", "infer"]:
                if a.mode and mode not in a.mode:
                    continue
                if mode == "train":
                    def f():
                        for p in s.params():
                            p.grad = None
                        out = fwd()
                        h = torch.cat(out) if isinstance(out, list) else out
                        (h * s.dh_all).sum().backward()
                else:
                    def f():
                        with torch.inference_mode():
                            fwd()
                reps = 2 if way == "node" else 5
                secs = median_time(f, reps, a.seconds)
                print(json.dumps({
                    "config": name, "mode": mode, "way": "torch-" + way,
                    "trees_per_s": round(B / secs, 1), "nodes_per_s": round(s.nodes / secs, 1),
                    "ms_per_batch": round(secs * 1e3, 3), "threads": a.threads,
                }), flush=True)


if __name__ == "__main__":
    main()

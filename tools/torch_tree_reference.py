#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for unfold's recursive networks (crates/unfold/src/layers/tree.rs).

Each composition is written the obvious recursive way: a Python function that computes a
node's state from its children's, called on the root, on fixed weights:

    rnn nary    h = tanh(W x + b + U [h_1; ...; h_n])          (missing children: zeros)
    rnn sum     h = tanh(W x + b + U sum_k h_k)
    lstm sum    child-sum Tree-LSTM (Tai et al. 2015): i, o, u read sum_k h_k, one forget gate
                per child f_k = sigmoid(W_f x + b_f + U_f h_k), c = i u + sum_k f_k c_k
    lstm nary   N-ary Tree-LSTM: every gate reads [h_1; ...; h_n] with its own rows of U, one
                forget gate per child position sharing W_f x + b_f

A node without a word reads x = 0. The model: embedding -> composition -> linear head ->
softmax cross-entropy, averaged over the scored rows: the roots (tree classification) or every
labelled node (node labelling). Saved with safetensors:

    model.<name>    the model's parameters under unfold's names (input.weight, tree.weight_ih,
                    tree.weight_hh, tree.bias, head.weight, head.bias)
    loss            the mean NLL
    h               every node's state, trees in order, nodes in their stored order
    grad.<name>     the parameter gradients

and metadata: `config` (unfold's TreeConfig as JSON), `trees` (JSON: per tree the children,
the input ids, has_input, the targets, has_target), the torch version. Run from the repository
root:

    python3 tools/torch_tree_reference.py crates/unfold/tests/fixtures/trees
"""
import json
import os
import random
import sys

import torch
from safetensors.torch import save_file

VOCAB, DIM, H, CLASSES = 7, 3, 4, 3


def random_tree(leaves, arity, rng):
    """Children lists, children first, root last: adjacent groups merged until one is left."""
    nodes = [[] for _ in range(leaves)]
    level = list(range(leaves))
    while len(level) > 1:
        take = 1 + rng.randrange(min(arity, len(level)))
        at = rng.randrange(len(level) - take + 1)
        kids = level[at:at + take]
        del level[at:at + take]
        nodes.append(kids)
        level.insert(at, len(nodes) - 1)
    return nodes


def make_trees(arity, rng):
    trees = []
    for leaves in [6, 1, 4, 9, 3]:
        ch = random_tree(leaves, arity, rng)
        n = len(ch)
        trees.append({
            "children": ch,
            "input": [rng.randrange(VOCAB) for _ in range(n)],
            "has_input": [len(c) == 0 or rng.randrange(3) == 0 for c in ch],
            "target": [rng.randrange(CLASSES) for _ in range(n)],
            "has_target": [i == n - 1 or rng.randrange(4) != 0 for i in range(n)],
        })
    return trees


def params(cell, children, g):
    k = 1 / H**0.5
    gx = 1 if cell == "rnn" else 4
    slots = children["n"] if children["kind"] == "nary" else 1
    gh = 1 if cell == "rnn" else (4 if children["kind"] == "sum" else slots + 3)

    def u(*shape, scale=k):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * scale

    p = {
        "input.weight": u(VOCAB, DIM, scale=1.0),
        "tree.weight_ih": u(gx * H, DIM),
        "tree.weight_hh": u(gh * H, slots * H),
        "tree.bias": u(gx * H),
        "head.weight": u(CLASSES, H, scale=0.5),
        "head.bias": u(CLASSES, scale=0.5),
    }
    # Round to f32 so that unfold reads exactly these weights; compute in f64.
    return {name: v.float().double().requires_grad_() for name, v in p.items()}


def node_states(tree, p, cell, children):
    """Every node's (h, c), computed recursively from the root."""
    ch = tree["children"]
    memo = {}
    w_ih, w_hh, b = p["tree.weight_ih"], p["tree.weight_hh"], p["tree.bias"]

    def state(i):
        if i in memo:
            return memo[i]
        kids = [state(c) for c in ch[i]]
        x = p["input.weight"][tree["input"][i]] if tree["has_input"][i] else torch.zeros(DIM, dtype=torch.float64)
        px = w_ih @ x + b
        zero = torch.zeros(H, dtype=torch.float64)
        if children["kind"] == "nary":
            n = children["n"]
            hs = torch.cat([k[0] for k in kids] + [zero] * (n - len(kids)))
        else:
            hs = sum((k[0] for k in kids), zero)
        if cell == "rnn":
            h, c = torch.tanh(px + w_hh @ hs), None
        elif children["kind"] == "sum":
            r = w_hh @ hs
            i_g = torch.sigmoid(px[:H] + r[:H])
            g_g = torch.tanh(px[2 * H:3 * H] + r[2 * H:3 * H])
            o_g = torch.sigmoid(px[3 * H:] + r[3 * H:])
            c = i_g * g_g
            for kh, kc in kids:
                f = torch.sigmoid(px[H:2 * H] + w_hh[H:2 * H] @ kh)
                c = c + f * kc
            h = o_g * torch.tanh(c)
        else:
            n = children["n"]
            r = w_hh @ hs
            i_g = torch.sigmoid(px[:H] + r[:H])
            g_g = torch.tanh(px[2 * H:3 * H] + r[(n + 1) * H:(n + 2) * H])
            o_g = torch.sigmoid(px[3 * H:] + r[(n + 2) * H:])
            c = i_g * g_g
            for slot, (kh, kc) in enumerate(kids):
                f = torch.sigmoid(px[H:2 * H] + r[(1 + slot) * H:(2 + slot) * H])
                c = c + f * kc
            h = o_g * torch.tanh(c)
        memo[i] = (h, c)
        return memo[i]

    state(len(ch) - 1)
    return [memo[i][0] for i in range(len(ch))]


def fixture(name, cell, children, outputs, arity, seed, out_dir):
    rng = random.Random(seed)
    g = torch.Generator().manual_seed(seed)
    trees = make_trees(arity, rng)
    p = params(cell, children, g)
    logits, targets, all_h = [], [], []
    for t in trees:
        hs = node_states(t, p, cell, children)
        all_h.extend(hs)
        rows = [len(hs) - 1] if outputs == "root" else range(len(hs))
        for r in rows:
            if t["has_target"][r]:
                logits.append(p["head.weight"] @ hs[r] + p["head.bias"])
                targets.append(t["target"][r])
    loss = torch.nn.functional.cross_entropy(torch.stack(logits), torch.tensor(targets))
    loss.backward()
    tensors = {"model." + k: v.detach().float().contiguous() for k, v in p.items()}
    tensors.update({"grad." + k: v.grad.float().contiguous() for k, v in p.items()})
    tensors["loss"] = loss.detach().float().reshape(1)
    tensors["h"] = torch.stack(all_h).detach().float().contiguous()
    config = {
        "input": {"Symbols": {"vocab": VOCAB, "dim": DIM}},
        "cell": cell,
        "children": children,
        "hidden": H,
        "deep_output": 0,
        "output": {"Categorical": {"classes": CLASSES, "pad": None}},
        "outputs": outputs,
    }
    meta = {
        "config": json.dumps(config),
        "trees": json.dumps(trees),
        "torch": torch.__version__,
    }
    save_file(tensors, os.path.join(out_dir, name + ".safetensors"), metadata=meta)
    print(f"{name}: loss {loss.item():.6f}")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "crates/unfold/tests/fixtures/trees"
    os.makedirs(out, exist_ok=True)
    fixture("rnn_binary_root", "rnn", {"kind": "nary", "n": 2}, "root", 2, 1, out)
    fixture("rnn_sum_nodes", "rnn", {"kind": "sum"}, "nodes", 4, 2, out)
    fixture("lstm_sum_nodes", "lstm", {"kind": "sum"}, "nodes", 4, 3, out)
    fixture("lstm_sum_root", "lstm", {"kind": "sum"}, "root", 3, 4, out)
    fixture("lstm_nary3_root", "lstm", {"kind": "nary", "n": 3}, "root", 3, 5, out)
    fixture("lstm_binary_nodes", "lstm", {"kind": "nary", "n": 2}, "nodes", 2, 6, out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes PyTorch reference fixtures for unfold's training pieces.

    optim_<name>.safetensors   an optimizer from torch.optim run for 6 steps on two tensors with
                               given gradients: p.<i> (start), g.<step>.<i> (gradients),
                               e.<step>.<i> (parameters after the step); the optimizer's
                               keyword arguments as JSON in the metadata ("kwargs").
    lr_schedules.safetensors   learning rates for 40 steps (float64) of StepLR, ExponentialLR,
                               CosineAnnealingLR and LinearLR warm-up followed by cosine
                               (SequentialLR), each as read by get_last_lr() before each step.
    losses.safetensors         cross-entropy with ignore_index, BCEWithLogits, and the Gaussian
                               NLL with a learned per-output log-variance: inputs, mean losses
                               and gradients.
    labeller_lstm.safetensors  Embedding -> LSTM -> Linear -> cross-entropy (ignore_index) on a
                               padded batch of variable lengths: weights, loss, all gradients.
    char_lm_trajectory.safetensors
                               a whole character-LM training run: a text drawn from a random
                               Markov chain (ids), the initial weights (input.*, rnn.*, head.*),
                               the loss of each of 200 updates of truncated BPTT as
                               `unfold train --text` runs it (4 contiguous parallel streams,
                               windows of 16 with the state carried, a zero state at each new
                               pass over the text; Adam 1e-2, clipping at norm 1), and the final
                               weights (final.*). Sizes in the metadata.
    classifier_trajectory.safetensors
                               a whole sequence-classifier training run, the model of
                               `unfold train --ts`'s defaults: a bidirectional GRU over
                               variable-length series (packed), the mean of its outputs over
                               each series' steps, a linear head, cross-entropy; 100 full-batch
                               Adam updates with clipping at norm 1. The data (x, padded
                               [N, T, C]; lengths; labels), the initial and final weights and
                               every update's loss.
    seq2seq_trajectory.safetensors
                               a whole encoder-decoder training run, the model of
                               `unfold train --pairs`'s defaults: a bidirectional GRU encoder over
                               packed sources, its final states through tanh(Linear) as the
                               decoder's initial state, a GRU decoder under teacher forcing,
                               additive attention (v^T tanh(W_1 h + b + W_2 e)) combined as
                               tanh(W_c [c; h] + b_c), cross-entropy ignoring <pad> (0);
                               60 full-batch Adam updates with clipping at norm 1. The data,
                               initial and final weights and every update's loss.

Run from the repository root:

    python3 tools/torch_train_reference.py crates/unfold/tests/fixtures/train
"""
import json
import math
import os
import sys

import torch
from safetensors.torch import save_file

OPTIMIZERS = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    "sgd_nesterov": ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True)),
    "adam": ("Adam", dict(lr=0.01)),
    "adam_l2_amsgrad": ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, amsgrad=True)),
    "adamw": ("AdamW", dict(lr=0.01, weight_decay=0.05)),
    "rmsprop": ("RMSprop", dict(lr=0.01)),
    "rmsprop_centered_momentum": ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.02)),
    "adagrad": ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
}


def optimizers(out):
    for name, (cls, kw) in OPTIMIZERS.items():
        g = torch.Generator().manual_seed(7)
        ps = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
        tensors = {f"p.{i}": p.clone() for i, p in enumerate(ps)}
        params = [torch.nn.Parameter(p.clone()) for p in ps]
        opt = getattr(torch.optim, cls)(params, foreach=False, **kw)
        for step in range(6):
            for i, p in enumerate(params):
                grad = torch.randn(p.shape, generator=g) * (0.1 + step)
                p.grad = grad.clone()
                tensors[f"g.{step}.{i}"] = grad
            opt.step()
            for i, p in enumerate(params):
                tensors[f"e.{step}.{i}"] = p.detach().clone()
        save_file(tensors, os.path.join(out, f"optim_{name}.safetensors"),
                  metadata={"kwargs": json.dumps(kw), "class": cls, "torch": torch.__version__})


def schedules(out):
    def run(make):
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=0.1)
        sched = make(opt)
        lrs = []
        for _ in range(40):
            lrs.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return torch.tensor(lrs, dtype=torch.float64)

    lr = torch.optim.lr_scheduler
    tensors = {
        "step": run(lambda o: lr.StepLR(o, step_size=7, gamma=0.5)),
        "exponential": run(lambda o: lr.ExponentialLR(o, gamma=0.9)),
        "cosine": run(lambda o: lr.CosineAnnealingLR(o, T_max=30, eta_min=0.001)),
        "warmup_cosine": run(lambda o: lr.SequentialLR(o, [
            lr.LinearLR(o, start_factor=0.25, total_iters=5),
            lr.CosineAnnealingLR(o, T_max=30, eta_min=0.001)], milestones=[5])),
    }
    save_file(tensors, os.path.join(out, "lr_schedules.safetensors"),
              metadata={"torch": torch.__version__})


def losses(out):
    g = torch.Generator().manual_seed(3)
    n, c, d = 9, 5, 3
    logits = torch.randn(n, c, generator=g, requires_grad=True)
    y = torch.randint(0, c, (n,), generator=g)
    y[2] = 0
    y[5] = 0
    ce = torch.nn.functional.cross_entropy(logits, y, ignore_index=0)
    ce.backward()
    z = (torch.randn(n, d, generator=g) * 3).requires_grad_()
    yb = (torch.rand(n, d, generator=g) > 0.5).float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, yb, reduction="sum") / n
    bce.backward()
    mu = torch.randn(n, d, generator=g, requires_grad=True)
    yg = torch.randn(n, d, generator=g)
    log_var = (torch.randn(d, generator=g) * 0.5).requires_grad_()
    nll = 0.5 * (math.log(2 * math.pi) + log_var + (yg - mu) ** 2 / log_var.exp())
    gauss = nll.sum() / n
    gauss.backward()
    tensors = {
        "ce.logits": logits.detach(), "ce.target": y.double(), "ce.loss": ce.detach().reshape(1),
        "ce.grad": logits.grad,
        "bce.logits": z.detach(), "bce.target": yb, "bce.loss": bce.detach().reshape(1),
        "bce.grad": z.grad,
        "gauss.mean": mu.detach(), "gauss.target": yg, "gauss.log_var": log_var.detach(),
        "gauss.loss": gauss.detach().reshape(1), "gauss.grad": mu.grad,
        "gauss.grad_log_var": log_var.grad,
    }
    save_file(tensors, os.path.join(out, "losses.safetensors"), metadata={"torch": torch.__version__})


def labeller(out):
    torch.manual_seed(11)
    V, E, H, T, B, PAD = 7, 4, 5, 6, 3, 0
    lengths = [6, 3, 5]
    emb = torch.nn.Embedding(V, E)
    rnn = torch.nn.LSTM(E, H)
    head = torch.nn.Linear(H, V)
    x = torch.randint(1, V, (T, B))
    y = torch.randint(1, V, (T, B))
    for b, L in enumerate(lengths):
        x[L:, b] = 0
        y[L:, b] = PAD
    y[1, 0] = PAD  # a padding target inside a sequence is ignored too
    packed = torch.nn.utils.rnn.pack_padded_sequence(emb(x), lengths, enforce_sorted=False)
    o, _ = rnn(packed)
    o, _ = torch.nn.utils.rnn.pad_packed_sequence(o, total_length=T)
    logits = head(o)
    loss = torch.nn.functional.cross_entropy(logits.reshape(T * B, V), y.reshape(-1), ignore_index=PAD)
    loss.backward()
    tensors = {"x": x.double(), "y": y.double(), "lengths": torch.tensor(lengths, dtype=torch.float64),
               "loss": loss.detach().reshape(1)}
    for prefix, m in (("input", emb), ("rnn", rnn), ("head", head)):
        for k, v in m.state_dict().items():
            tensors[f"{prefix}.{k}"] = v.clone()
        for k, p in m.named_parameters():
            tensors[f"grad.{prefix}.{k}"] = p.grad.clone()
    save_file(tensors, os.path.join(out, "labeller_lstm.safetensors"), metadata={"torch": torch.__version__})


def weights(mods, prefix=""):
    """The modules' weights under unfold's names: `{prefix}{module}.{PyTorch's name}`."""
    return {f"{prefix}{name}.{k}": v.clone() for name, m in mods for k, v in m.state_dict().items()}


def char_lm_trajectory(out):
    g = torch.Generator().manual_seed(11)
    torch.manual_seed(11)
    V, E, H, B, T, STEPS, LR = 24, 8, 16, 4, 16, 200, 1e-2
    L = 10 * T  # steps of each parallel stream: 10 whole windows per pass over the text
    # A text of B * L + 1 symbols (ids 4..23; 0-3 are unfold's special symbols) from a random
    # Markov chain with peaked transitions, so that there is something to learn.
    trans = torch.rand(20, 20, generator=g) ** 4
    trans /= trans.sum(1, keepdim=True)
    ids = [4]
    for _ in range(B * L):
        ids.append(4 + torch.multinomial(trans[ids[-1] - 4], 1, generator=g).item())
    ids = torch.tensor(ids)
    emb = torch.nn.Embedding(V, E)
    rnn = torch.nn.LSTM(E, H)
    head = torch.nn.Linear(H, V)
    mods = (("input", emb), ("rnn", rnn), ("head", head))
    tensors = {"ids": ids.double()}
    tensors.update(weights(mods))
    # Stream j is the j-th contiguous part of the text, as in unfold's truncated BPTT.
    xs = ids[:-1].view(B, L).t()
    ys = ids[1:].view(B, L).t()
    params = [p for _, m in mods for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=LR, foreach=False)
    losses, pos, state = [], 0, None
    for _ in range(STEPS):
        if pos >= L:
            pos, state = 0, None
        x, y = xs[pos:pos + T], ys[pos:pos + T]
        pos += T
        if state is not None:
            state = tuple(s.detach() for s in state)
        o, state = rnn(emb(x), state)
        loss = torch.nn.functional.cross_entropy(head(o).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    tensors.update(weights(mods, "final."))
    meta = {"torch": torch.__version__, "vocab": str(V), "embed": str(E), "hidden": str(H),
            "streams": str(B), "window": str(T), "steps": str(STEPS), "lr": str(LR)}
    save_file(tensors, os.path.join(out, "char_lm_trajectory.safetensors"), metadata=meta)


def classifier_trajectory(out):
    g = torch.Generator().manual_seed(12)
    torch.manual_seed(12)
    N, C, H, K, TMAX, STEPS, LR = 12, 2, 8, 3, 12, 100, 1e-2
    lengths = torch.randint(4, TMAX + 1, (N,), generator=g)
    labels = torch.randint(0, K, (N,), generator=g)
    x = torch.randn(N, TMAX, C, generator=g)
    # Something to learn: the class shifts the first channel's level.
    x[:, :, 0] += labels[:, None].float() - 1.0
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    rnn = torch.nn.GRU(C, H, batch_first=True, bidirectional=True)
    head = torch.nn.Linear(2 * H, K)
    mods = (("rnn", rnn), ("head", head))
    tensors = {"x": x.double(), "lengths": lengths.double(), "labels": labels.double()}
    tensors.update(weights(mods))
    params = [p for _, m in mods for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=LR, foreach=False)
    mask = (torch.arange(TMAX)[None, :] < lengths[:, None]).float()[..., None]
    losses = []
    for _ in range(STEPS):
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        o, _ = rnn(packed)
        o, _ = torch.nn.utils.rnn.pad_packed_sequence(o, batch_first=True, total_length=TMAX)
        z = (o * mask).sum(1) / lengths[:, None].float()
        loss = torch.nn.functional.cross_entropy(head(z), labels)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    tensors.update(weights(mods, "final."))
    meta = {"torch": torch.__version__, "channels": str(C), "hidden": str(H), "classes": str(K),
            "steps": str(STEPS), "lr": str(LR)}
    save_file(tensors, os.path.join(out, "classifier_trajectory.safetensors"), metadata=meta)


def seq2seq_trajectory(out):
    g = torch.Generator().manual_seed(13)
    torch.manual_seed(13)
    SV, TV, E, H, B, STEPS, LR = 9, 10, 6, 8, 6, 60, 1e-2
    src_len = torch.randint(3, 8, (B,), generator=g)
    tgt_len = torch.randint(2, 7, (B,), generator=g)
    TX, TY = int(src_len.max()), int(tgt_len.max())
    src = torch.randint(4, SV, (TX, B), generator=g)
    # Targets: a function of the source (reversed, mapped into the target ids), so that there
    # is something to learn; decoder inputs: <bos> (1) then the targets shifted by one.
    y = torch.zeros(TY, B, dtype=torch.long)
    for j in range(B):
        for t in range(int(tgt_len[j])):
            y[t, j] = 4 + (int(src[(int(src_len[j]) - 1 - t) % int(src_len[j]), j]) % (TV - 4))
    x = torch.zeros(TY, B, dtype=torch.long)
    x[0] = 1
    x[1:] = y[:-1]
    for j in range(B):
        src[int(src_len[j]):, j] = 0
        x[int(tgt_len[j]):, j] = 0
    src_emb, tgt_emb = torch.nn.Embedding(SV, E), torch.nn.Embedding(TV, E)
    enc = torch.nn.GRU(E, H, bidirectional=True)
    bridge = torch.nn.Linear(2 * H, H)
    dec = torch.nn.GRU(E, H)
    attn_key = torch.nn.Linear(2 * H, H, bias=False)
    attn_query = torch.nn.Linear(H, H)
    attn_v = torch.nn.Linear(H, 1, bias=False)
    combine = torch.nn.Linear(3 * H, H)
    head = torch.nn.Linear(H, TV)
    mods = (("src_embed", src_emb), ("tgt_embed", tgt_emb), ("encoder", enc), ("bridge", bridge),
            ("decoder", dec), ("attn_key", attn_key), ("attn_query", attn_query), ("attn_v", attn_v),
            ("combine", combine), ("head", head))
    tensors = {"src": src.double(), "src_len": src_len.double(), "x": x.double(), "y": y.double(),
               "tgt_len": tgt_len.double()}
    tensors.update(weights(mods))
    params = [p for _, m in mods for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=LR, foreach=False)
    src_mask = torch.arange(TX)[:, None] < src_len[None, :]  # [TX, B]
    losses = []
    for _ in range(STEPS):
        packed = torch.nn.utils.rnn.pack_padded_sequence(src_emb(src), src_len, enforce_sorted=False)
        e_out, h_n = enc(packed)
        e_out, _ = torch.nn.utils.rnn.pad_packed_sequence(e_out, total_length=TX)
        ctx = torch.cat([h_n[0], h_n[1]], -1)
        h0 = torch.tanh(bridge(ctx))[None]
        packed = torch.nn.utils.rnn.pack_padded_sequence(tgt_emb(x), tgt_len, enforce_sorted=False)
        d_out, _ = dec(packed, h0)
        d_out, _ = torch.nn.utils.rnn.pad_packed_sequence(d_out, total_length=TY)
        keys = attn_key(e_out)  # [TX, B, H]
        q = attn_query(d_out)  # [TY, B, H]
        score = attn_v(torch.tanh(q[:, None] + keys[None])).squeeze(-1)  # [TY, TX, B]
        score = score.masked_fill(~src_mask[None], float("-inf"))
        a = torch.softmax(score, 1)
        c = torch.einsum("tsb,sbd->tbd", a, e_out)
        htil = torch.tanh(combine(torch.cat([c, d_out], -1)))
        loss = torch.nn.functional.cross_entropy(head(htil).reshape(-1, TV), y.reshape(-1), ignore_index=0)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    tensors.update(weights(mods, "final."))
    meta = {"torch": torch.__version__, "src_vocab": str(SV), "tgt_vocab": str(TV), "embed": str(E),
            "hidden": str(H), "steps": str(STEPS), "lr": str(LR)}
    save_file(tensors, os.path.join(out, "seq2seq_trajectory.safetensors"), metadata=meta)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    optimizers(out)
    schedules(out)
    losses(out)
    labeller(out)
    char_lm_trajectory(out)
    classifier_trajectory(out)
    seq2seq_trajectory(out)
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("# PyTorch reference fixtures for training\n\n")
        f.write(f"Made by `python3 tools/torch_train_reference.py crates/unfold/tests/fixtures/train` "
                f"with torch {torch.__version__} (CPU, 1 thread). See the script's docstring for "
                "the contents of each file.\n")


if __name__ == "__main__":
    main()

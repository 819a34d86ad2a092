#!/usr/bin/env python3
"""The same character language model as `unfold train --text FILE` (its defaults), in PyTorch,
for a side-by-side comparison of held-out loss and wall-clock time.

Same data handling (sorted character vocabulary plus 4 special symbols, 90/5/5 split in order,
32 parallel streams, truncated BPTT windows of 100 steps with the state carried, validation on
up to 500 windows of the validation part from a zero state every 100 steps, test bits per
character over the whole test part with the state carried), same model (embedding 16, LSTM 128,
forget-gate bias 1, linear head), same optimisation (Adam 2e-3 with a cosine decay to lr/20
over 2000 steps, gradient clipping at norm 1), all in float32 on the CPU. Every one of those
settings is a flag with the same name as `unfold train`'s, so that any unfold run can be
repeated here:

    python3 tools/torch_char_lm.py ../shared/data/text/shakespeare_all_gut.txt --threads 2
    python3 tools/torch_char_lm.py TEXT --bytes 2000000 --embed 64 --hidden 256 \
        --forget-bias 0 --schedule constant --clip 5 --steps 500 --seed 1

`--bytes N` keeps the first N characters of the text (as `head -c`, for an excerpt).
"""
import argparse
import math
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("text")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embed", type=int, default=16)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=100)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--schedule", choices=["cosine", "constant"], default="cosine")
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--forget-bias", type=float, default=1.0)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--bytes", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    text = open(a.text, encoding="utf-8").read()
    if a.bytes > 0:
        text = text.encode("utf-8")[: a.bytes].decode("utf-8", errors="ignore")
    chars = sorted(set(text))
    idx = {c: i + 4 for i, c in enumerate(chars)}
    ids = torch.tensor([idx[c] for c in text], dtype=torch.long)
    n = len(ids)
    a9, b95 = n * 9 // 10, n * 19 // 20
    train, valid, test = ids[:a9], ids[a9:b95], ids[b95:]
    V, E, H, B, T, lr = len(chars) + 4, a.embed, a.hidden, a.batch, a.seq_len, a.lr

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E)
            self.rnn = torch.nn.LSTM(E, H)
            self.head = torch.nn.Linear(H, V)
            with torch.no_grad():
                if a.forget_bias != 0.0:
                    self.rnn.bias_ih_l0[H:2 * H].fill_(a.forget_bias)
                    self.rnn.bias_hh_l0[H:2 * H].fill_(0.0)

        def forward(self, x, state=None):
            o, state = self.rnn(self.emb(x), state)
            return self.head(o), state

    m = LM()
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    if a.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=a.steps, eta_min=lr / 20)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    # Parallel streams over the training part (inputs and next-symbol targets).
    L = (len(train) - 1) // B
    xs = train[:-1][: L * B].view(B, L).t()
    ys = train[1:][: L * B].view(B, L).t()
    # Validation windows of T steps (inputs, targets), from a zero state.
    vw = [valid[i:i + T + 1] for i in range(0, len(valid) - T, T)][:500]
    vx = torch.stack([w[:-1] for w in vw], 1)
    vy = torch.stack([w[1:] for w in vw], 1)

    def validate():
        with torch.no_grad():
            tot = 0.0
            for j in range(0, vx.shape[1], 256):
                lo, _ = m(vx[:, j:j + 256])
                tot += torch.nn.functional.cross_entropy(lo.reshape(-1, V), vy[:, j:j + 256].reshape(-1), reduction="sum").item()
            return tot / vx.numel()

    state = None
    pos = 0
    t0 = time.time()
    for step in range(1, a.steps + 1):
        if pos + T > L:
            pos, state = 0, None
        x, y = xs[pos:pos + T], ys[pos:pos + T]
        pos += T
        if state is not None:
            state = tuple(s.detach() for s in state)
        logits, state = m(x, state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        if a.clip > 0:
            torch.nn.utils.clip_grad_norm_(m.parameters(), a.clip)
        opt.step()
        sched.step()
        if a.eval_every > 0 and step % a.eval_every == 0:
            v = validate()
            print(f"step {step} train loss {loss.item():.4f} valid loss {v:.4f}", flush=True)
    train_s = time.time() - t0
    with torch.no_grad():
        state, tot = None, 0.0
        for j in range(0, len(test) - 1, 1000):
            x = test[j:min(j + 1000, len(test) - 1)].view(-1, 1)
            y = test[j + 1:j + 1 + x.shape[0]].view(-1, 1)
            lo, state = m(x, state)
            tot += torch.nn.functional.cross_entropy(lo.reshape(-1, V), y.reshape(-1), reduction="sum").item()
        test_nats = tot / (len(test) - 1)
    print(f"torch {torch.__version__}, {a.threads} threads: trained {a.steps} steps in {train_s:.1f} s; "
          f"valid loss {validate():.4f} nats; test {test_nats:.4f} nats = {test_nats / math.log(2):.4f} bits per character")


if __name__ == "__main__":
    main()

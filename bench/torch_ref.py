"""PyTorch reference timings for `npm run bench:models` (issue targets are ratios against these, same machine).

The BERT shapes of bench/models.ts written directly in torch (transformers cannot be installed here): the encoder is
HF's BertModel computation (post-LayerNorm, GELU, additive mask), so its FLOPs and memory traffic are the same.
Run: /usr/bin/python3 bench/torch_ref.py [--json]   (PyTorch 1.13 from Debian: apt-get install python3-torch)
Every row: 1 thread, 1 warm-up, best of 5.
"""
import json, math, os, sys, time

# Debian's torch does its GEMMs in OpenBLAS, whose own threads ignore torch.set_num_threads: pin every pool to 1
for v in ('OMP_NUM_THREADS', 'OPENBLAS_NUM_THREADS', 'MKL_NUM_THREADS'):
    os.environ[v] = '1'
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
torch.manual_seed(0)


class Layer(nn.Module):
    def __init__(s, h, nh, ff):
        super().__init__()
        s.nh, s.hd = nh, h // nh
        s.q, s.k, s.v, s.o = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        s.ln1, s.ln2 = nn.LayerNorm(h, eps=1e-12), nn.LayerNorm(h, eps=1e-12)
        s.up, s.down = nn.Linear(h, ff), nn.Linear(ff, h)
        s.drop = nn.Dropout(0.1)

    def forward(s, x, mask):
        B, T, H = x.shape
        heads = lambda t: t.view(B, T, s.nh, s.hd).transpose(1, 2)
        q, k, v = heads(s.q(x)), heads(s.k(x)), heads(s.v(x))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(s.hd) + mask
        ctx = (s.drop(att.softmax(-1)) @ v).transpose(1, 2).reshape(B, T, H)
        a = s.ln1(s.drop(s.o(ctx)) + x)
        return s.ln2(s.drop(s.down(F.gelu(s.up(a)))) + a)


class Bert(nn.Module):
    def __init__(s, vocab, h, layers, nh, ff, labels=None):
        super().__init__()
        s.tok, s.pos, s.typ = nn.Embedding(vocab, h), nn.Embedding(512, h), nn.Embedding(2, h)
        s.ln = nn.LayerNorm(h, eps=1e-12)
        s.layers = nn.ModuleList([Layer(h, nh, ff) for _ in range(layers)])
        s.drop = nn.Dropout(0.1)
        if labels:
            s.pool, s.cls = nn.Linear(h, h), nn.Linear(h, labels)
        else:  # MLM head: transform + decoder tied to the word embeddings
            s.tr, s.trln, s.bias = nn.Linear(h, h), nn.LayerNorm(h, eps=1e-12), nn.Parameter(torch.zeros(vocab))

    def encode(s, ids):
        B, T = ids.shape
        x = s.drop(s.ln(s.tok(ids) + s.pos(torch.arange(T))[None] + s.typ(torch.zeros_like(ids))))
        mask = torch.zeros(B, 1, 1, T)
        for l in s.layers:
            x = l(x, mask)
        return x


def best(fn, n=5):
    fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1000)
    return min(ts)


rows = []
# bert-base-infer-b1-s128
base = Bert(30522, 768, 12, 12, 3072).eval()
ids = torch.randint(0, 30522, (1, 128))
with torch.no_grad():
    rows.append(('bert-base-infer-b1-s128', best(lambda: base.encode(ids))))
del base

# bert-mini train steps: 4 layers, hidden 256, 4 heads, FFN 1024, batch 32 × 64
def step_mlm():
    m = Bert(30522, 256, 4, 4, 1024).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    ids = torch.randint(0, 30522, (32, 64))
    lab = torch.full((32, 64), -100)
    sel = torch.rand(32, 64) < 0.15
    lab[sel] = ids[sel]

    def run():
        opt.zero_grad()
        h = m.encode(ids).reshape(-1, 256)
        keep = (lab.reshape(-1) != -100).nonzero().squeeze(1)
        hh = m.trln(F.gelu(m.tr(h[keep])))
        logits = hh @ m.tok.weight.t() + m.bias
        F.cross_entropy(logits, lab.reshape(-1)[keep]).backward()
        opt.step()
    return run


def step_cls():
    m = Bert(30522, 256, 4, 4, 1024, labels=2).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    ids = torch.randint(0, 30522, (32, 64))
    y = torch.randint(0, 2, (32,))

    def run():
        opt.zero_grad()
        h = m.encode(ids)
        logits = m.cls(m.drop(torch.tanh(m.pool(h[:, 0]))))
        F.cross_entropy(logits, y).backward()
        opt.step()
    return run


rows.append(('bert-mini-train-step', best(step_mlm())))
rows.append(('bert-mini-train-step-cls', best(step_cls())))

if '--json' in sys.argv:
    for name, ms in rows:
        print(json.dumps({'name': name, 'ms': round(ms, 1), 'reference': f'pytorch {torch.__version__} 1 thread'}))
else:
    print(f'| name | PyTorch {torch.__version__} ms (1 thread, best of 5) |')
    print('| --- | --- |')
    for name, ms in rows:
        print(f'| {name} | {ms:.1f} |')

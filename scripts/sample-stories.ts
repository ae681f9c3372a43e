/**
 * Writes data/tinystories-samples/stories260K-samples.txt: 40 stories sampled from stories260K (temperature 1,
 * seeds 0..39, up to 256 tokens, stopping at EOS), one per line. TinyStories text itself is not available offline;
 * the model's own samples are in-distribution text for comparing compressed variants against the fp32 model
 * (absolute perplexities on them are optimistic for the model that wrote them).
 * Run: node --import tsx scripts/sample-stories.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Generator, fromPretrained, generate, loadTokenizer } from '../src/index.ts';
import type { CausalLM } from '../src/models/generation.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dir = path.join(root, 'data/models/stories260K');
const tok = loadTokenizer(dir);
const model = fromPretrained(dir) as unknown as CausalLM;
const lines: string[] = [];
for (let seed = 0; seed < 40; seed++) {
  const ids = generate(model, tok.encode(''), { maxNewTokens: 256, doSample: true, temperature: 1, eosTokenId: tok.specialIds.eos ?? null, generator: new Generator(seed) });
  lines.push(tok.decode(ids).replace(/\s+/g, ' ').trim());
}
const out = path.join(root, 'data/tinystories-samples/stories260K-samples.txt');
fs.writeFileSync(out, lines.join('\n') + '\n');
console.log(`wrote ${out}: ${lines.length} stories`);

// Fuzzing contract for recipes (issue #23; "Shrink's own error" as in test/fuzz/safetensors.test.ts): readRecipe
// (JSON and YAML files) → parseRecipe → resolveSteps against a model either yields checked steps or throws a
// ShrinkError naming the recipe file; never a TypeError from a hostile document (YAML alias cycles, "__proto__"
// options), and a valid recipe round-trips through both formats. Long runs: `npm run fuzz -- recipe --cases 100000`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import YAML from 'yaml';
import { ShrinkError } from '../../src/io/errors.ts';
import { readRecipe } from '../../src/cli/compress.ts';
import { parseRecipe, resolveSteps } from '../../src/compress/runner.ts';
import { Rng } from '../../fuzz/mutate.ts';
import { recipeTarget, runCase, tinyBert, writeCase } from '../../fuzz/readers.ts';

const SEED = 23;
const model = tinyBert();

const stepArb = fc.oneof(
  fc.record({ method: fc.constant('quant.rtn'), scheme: fc.constantFrom('int8', 'int4', 'int8-dynamic'), ignore: fc.constantFrom(['classifier'], ['bert.pooler.dense']) }, { requiredKeys: ['method'] }),
  fc.record({ method: fc.constant('quant.qat'), scheme: fc.constantFrom('int8-dynamic', 'int8'), weight: fc.double({ min: 0, max: 10, noNaN: true }) }, { requiredKeys: ['method'] }),
);
const recipeArb = fc.record(
  {
    model: fc.string({ maxLength: 10 }),
    task: fc.constantFrom('sst2', 'mrpc', 'ppl:data.txt'),
    description: fc.string({ maxLength: 20 }),
    calibration_samples: fc.integer({ min: 1, max: 512 }),
    train: fc.record({ steps: fc.integer({ min: 1, max: 1000 }), lr: fc.double({ min: 0, max: 1, noNaN: true }), schedule: fc.constantFrom('linear', 'cosine', 'constant') }, { requiredKeys: [] }),
    steps: fc.array(stepArb, { minLength: 1, maxLength: 3 }),
  },
  { requiredKeys: ['steps'] },
);

test('round trip: any valid recipe written as JSON or YAML reads back identical and resolves', () => {
  fc.assert(
    fc.property(recipeArb, fc.boolean(), (r, yaml) => {
      const name = yaml ? 'r.yaml' : 'r.json';
      const dir = writeCase({ [name]: Buffer.from(yaml ? YAML.stringify(r) : JSON.stringify(r)) }, 'rt');
      const back = readRecipe(path.join(dir, name));
      assert.deepEqual(back, JSON.parse(JSON.stringify(r)));
      assert.equal(resolveSteps(back, model).length, r.steps.length);
    }),
    { numRuns: 120, seed: SEED },
  );
});

test('arbitrary JSON values as recipes: parsed or a ShrinkError naming the file', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 3 }), (v) => {
      try {
        resolveSteps(parseRecipe(v, 'recipe X.json'), model, 'recipe X.json');
      } catch (e) {
        assert.ok(e instanceof ShrinkError && e.message.startsWith('recipe X.json'), String(e));
      }
    }),
    { numRuns: 800, seed: SEED },
  );
});

test('mutated recipe files (JSON and YAML): parsed or a ShrinkError naming the file', () => {
  const seeds = recipeTarget.seeds();
  fc.assert(fc.property(fc.integer(), (seed) => {
    const r = runCase(recipeTarget, recipeTarget.mutate(new Rng(seed), seeds));
    assert.equal(r, null, r ?? '');
  }), { numRuns: 300, seed: SEED });
});

test('regressions found by fuzzing: YAML alias cycles, prototype-named options', () => {
  const check = (name: string, text: string, re: RegExp) => {
    const f = path.join(writeCase({ [name]: Buffer.from(text) }, 'reg'), name);
    assert.throws(() => resolveSteps(readRecipe(f), model, `recipe ${f}`), (e: unknown) => e instanceof ShrinkError && e.message.includes(f) && re.test(e.message));
  };
  // a cycle through an alias: was a TypeError (Converting circular structure to JSON) while reporting the error
  check('cycle.yaml', '&a\nsteps: [*a]\n', /step 1: expected an object with a "method" string/);
  // options inherited from Object.prototype passed the unknown-option check; "__proto__" replaced cfg's prototype
  check('proto.json', '{"steps": [{"method": "quant.rtn", "__proto__": {"scheme": "int4"}}]}', /unknown option '__proto__'/);
  check('ctor.yaml', 'steps:\n  - method: quant.rtn\n    constructor: 1\n', /unknown option 'constructor'/);
  check('method.json', '{"steps": [{"method": "__proto__"}]}', /unknown method/);
  check('dir.yaml', '', /expected an object/);
  const d = writeCase({}, 'recipe-dir');
  fs.mkdirSync(path.join(d, 'r.json'));
  assert.throws(() => readRecipe(path.join(d, 'r.json')), (e: unknown) => e instanceof ShrinkError && /not a regular file/.test((e as Error).message));
});

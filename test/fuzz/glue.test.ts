// Issue #23: a small seeded run of the "glue" fuzz target (fuzz/targets/glue.ts) as part of npm test. The recorded
// run uses far more cases: node --import tsx fuzz/targets/glue.ts --cases 100000
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run } from '../../fuzz/targets/glue.ts';

test('fuzz target glue: seeded run finds no failures', async () => {
  const s = await run({ cases: 1500, seed: 0x5eed });
  assert.deepEqual(s.failures, [], JSON.stringify(s.failures, null, 2));
});

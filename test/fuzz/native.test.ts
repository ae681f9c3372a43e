// Issue #23: a small seeded run of the "native" fuzz target (fuzz/targets/native.ts) as part of npm test. The recorded
// run uses far more cases: node --import tsx fuzz/targets/native.ts --cases 100000
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nativeTestSkip } from '../../src/backend/native/index.ts';
import { run } from '../../fuzz/targets/native.ts';

const skip = nativeTestSkip(); // fails the file when SHRINK_REQUIRE_NATIVE=1 and the addon did not load

test('fuzz target native: seeded run finds no failures', { skip }, async () => {
  // every addon function, sgemm/sgemmRef included (they once segfaulted on sizes near 2^32…2^63; now bounded)
  const s = await run({ cases: 2000, seed: 0x5eed });
  assert.deepEqual(s.failures, [], JSON.stringify(s.failures, null, 2));
});

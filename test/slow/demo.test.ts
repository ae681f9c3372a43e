// The main job end to end (about 3–4 minutes on 2 cores; `npm run test:slow`, not part of `npm test`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

test('npx shrink demo reaches the documented SST-2 dev accuracy', { timeout: 15 * 60 * 1000 }, () => {
  const root = path.resolve(import.meta.dirname, '../..');
  const r = spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), 'demo', '--json'], { encoding: 'utf8', cwd: root });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.task, 'sst2');
  assert.ok(j.score >= 0.78, `accuracy ${j.score}`);
});

// Every quick recipe runs as is (`shrink compress --recipe recipes/quick-<method>.json -o <dir>`), within the
// 3-minute budget on 2 cores, and writes a folder that reloads and scores what its report says
// (`npm run test:slow`, not part of `npm test`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
const quick = fs.readdirSync(path.join(root, 'recipes')).filter((f) => /^quick-.*\.json$/.test(f)).sort();

test('there is a quick recipe for every method recipe', () => {
  const full = fs.readdirSync(path.join(root, 'recipes')).filter((f) => f.endsWith('.json') && !f.startsWith('quick-') && f !== 'int8-dynamic.json');
  for (const f of full) assert.ok(quick.includes(`quick-${f}`), `recipes/${f} has no recipes/quick-${f}`);
});

for (const f of quick) {
  test(`recipes/${f} runs as is in under 3 minutes and shrink eval reproduces its metric`, { timeout: 10 * 60 * 1000 }, () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'quick-recipe-'));
    fs.rmSync(out, { recursive: true });
    try {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), 'compress', '--recipe', path.join('recipes', f), '-o', out, '--json'], { encoding: 'utf8', cwd: root });
      const seconds = (performance.now() - t0) / 1000;
      assert.equal(r.status, 0, r.stderr);
      assert.ok(seconds < 180, `${f} took ${seconds.toFixed(0)} s`);
      const rep = JSON.parse(r.stdout);
      assert.ok(rep.after.bytes < rep.before.bytes, `${f}: ${rep.before.bytes} → ${rep.after.bytes} bytes`);
      const [, , , ...evalArgs] = rep.eval_command.split(' ');
      const e = spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), 'eval', out, ...evalArgs, '--json'], { encoding: 'utf8', cwd: root });
      assert.equal(e.status, 0, e.stderr);
      assert.ok(Math.abs(JSON.parse(e.stdout).score - rep.after.metric) <= 1e-6 * Math.abs(rep.after.metric), `${f}: eval differs from the report`);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
}

// `shrink teacher <task>`: fine-tunes once into the cache ($SHRINK_CACHE), reuses the finished folder afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');

test('shrink teacher: trains a cached teacher once, then reports it without training; bad tasks fail first', () => {
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'shrink-cache-'));
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(root, 'bin/shrink.js'), ...args], { encoding: 'utf8', cwd: root, env: { ...process.env, SHRINK_CACHE: cache } });
  try {
    const a = run('teacher', 'rte', '--base', 'data/models/bert-teacher', '--steps', '2', '--json');
    assert.equal(a.status, 0, a.stderr);
    const ra = JSON.parse(a.stdout) as { dir: string; cached: boolean; task: string; score: number };
    assert.equal(ra.cached, false);
    assert.equal(ra.task, 'rte');
    assert.ok(ra.dir.startsWith(path.join(cache, 'teachers', 'bert-teacher-rte-')), ra.dir);
    assert.ok(fs.existsSync(path.join(ra.dir, 'config.json')) && fs.existsSync(path.join(ra.dir, 'vocab.txt')));
    const b = run('teacher', 'rte', '--base', 'data/models/bert-teacher', '--steps', '2', '--json');
    assert.equal(b.status, 0, b.stderr);
    const rb = JSON.parse(b.stdout) as { dir: string; cached: boolean; score: number };
    assert.deepEqual([rb.dir, rb.cached, rb.score], [ra.dir, true, ra.score]);
    const c = run('teacher', 'qnli');
    assert.equal(c.status, 1);
    assert.equal(c.stderr, "shrink: <task> must be one of sst2, mrpc, rte, cola, got 'qnli'\n");
    const d = run('teacher', 'rte', '--base', 'data/models/nope');
    assert.equal(d.status, 1);
    assert.match(d.stderr, /^shrink: teacher base data\/models\/nope: not a model folder \(config.json and model.safetensors expected\)\n$/);
  } finally {
    fs.rmSync(cache, { recursive: true, force: true });
  }
});

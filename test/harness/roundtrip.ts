/** Save a model with savePretrained into a temporary folder and load it back with fromPretrained (the folder is removed). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fromPretrained, savePretrained } from '../../src/index.ts';
import type { Module } from '../../src/nn/module.ts';

export function roundTrip<M extends Module>(m: M): { loaded: M; config: Record<string, unknown> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roundtrip-'));
  try {
    savePretrained(m as never, dir);
    return { loaded: fromPretrained<M>(dir), config: JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Fixture access. Parity tests read their folder from SHRINK_FIXTURES (default: the repo's copy of
 * the project's reference fixtures, test/data/fixtures/seed1), so any fixture set with the same layout runs through the
 * same tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadSafetensors } from '../../src/io/safetensors.ts';
import type { Tensor } from '../../src/index.ts';

export const FIXTURES = path.resolve(process.env.SHRINK_FIXTURES ?? path.join(import.meta.dirname, '../data/fixtures/seed1'));

export interface TensorMeta {
  dtype: string;
  shape: number[];
  description?: string;
  near_zero_in_exact_arithmetic?: boolean;
  [k: string]: unknown;
}

export interface Fixture {
  dir: string;
  index: Record<string, unknown> & { tensors: Record<string, TensorMeta> };
  tensors: Map<string, Tensor>;
  t(name: string): Tensor;
  names(prefix: string): string[];
}

/** A fixture from its folder, index file and tensor file; `label` names it in errors. */
function openFixture(dir: string, label: string, jsonFile: string, tensorFile: string): Fixture {
  const index = JSON.parse(fs.readFileSync(jsonFile, 'utf8'));
  const { tensors } = loadSafetensors(tensorFile);
  return {
    dir,
    index,
    tensors,
    t(n) {
      const t = tensors.get(n);
      if (!t) throw new Error(`fixture ${label}: no tensor '${n}'`);
      return t;
    },
    names(prefix) {
      return [...tensors.keys()].filter((k) => k.startsWith(prefix)).sort();
    },
  };
}

/**
 * The folder of model fixture `name` (a Hugging Face model folder plus expected.json / expected.safetensors).
 * Throws when it is missing: a test that needs a fixture fails, it never skips.
 */
export function modelFixtureDir(name: string): string {
  const dir = path.join(FIXTURES, name);
  if (!fs.existsSync(dir)) throw new Error(`fixture folder ${dir} is missing (SHRINK_FIXTURES=${FIXTURES})`);
  return dir;
}

export function modelFixture(name: string): Fixture {
  const dir = modelFixtureDir(name);
  return openFixture(dir, name, path.join(dir, 'expected.json'), path.join(dir, 'expected.safetensors'));
}

/** A method fixture: `<FIXTURES>/methods/<name>.json` (index) + `<name>.safetensors`. */
export function methodFixture(name: string): Fixture {
  const dir = path.join(FIXTURES, 'methods');
  const json = path.join(dir, `${name}.json`);
  if (!fs.existsSync(json)) throw new Error(`method fixture ${json} is missing (SHRINK_FIXTURES=${FIXTURES})`);
  return openFixture(dir, `methods/${name}`, json, path.join(dir, `${name}.safetensors`));
}

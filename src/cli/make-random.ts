/**
 * `shrink make-random <config.json> -o <dir> [--shards N] [--dtype bf16|fp32] [--seed 0]`: a random-weight Llama
 * checkpoint of that configuration (src/io/make-random.ts), written streaming — billion-parameter inputs without a
 * download.
 */
import type { Command } from 'commander';
import { makeRandomCheckpoint } from '../io/make-random.ts';
import { formatBytes } from './inspect.ts';
import { num } from './options.ts';

export function registerMakeRandom(program: Command, out: (s: string) => void): void {
  program
    .command('make-random')
    .description("Write a random-weight Llama checkpoint of a configuration (e.g. TinyLlama-1.1B's config.json) as sharded safetensors with an index, streaming in bounded memory")
    .argument('<config>', 'a config.json (model_type llama), or a folder holding one')
    .requiredOption('-o, --out <dir>', 'output model folder (written whole or not at all)')
    .option('--shards <n>', 'weight files (model-0000k-of-0000n.safetensors + index)', num('shards', 1, 100000, true), 1)
    .option('--dtype <dtype>', 'bf16 or fp32', 'bf16')
    .option('--seed <s>', 'random seed', num('seed', 0, 2 ** 32 - 1, true), 0)
    .option('--force', 'replace an existing non-empty output folder')
    .option('--json', 'print JSON')
    .action((config: string, o: { out: string; shards: number; dtype: string; seed: number; force?: boolean; json?: boolean }) => {
      let shown = -1;
      const r = makeRandomCheckpoint(config, o.out, {
        shards: o.shards,
        dtype: o.dtype as 'bf16' | 'fp32',
        seed: o.seed,
        force: o.force,
        onProgress: (w, t) => {
          const pct = Math.floor((100 * w) / t);
          if (o.json || pct < shown + 10) return;
          shown = pct;
          process.stderr.write(`make-random: ${formatBytes(w)} of ${formatBytes(t)} (${pct} %)\n`);
        },
      });
      out(
        o.json
          ? JSON.stringify(r) + '\n'
          : `wrote ${r.out}: ${r.parameters.toLocaleString('en-US')} parameters in ${r.tensors} tensors, ${formatBytes(r.bytes)} as ${o.dtype} in ${r.files.length} file${r.files.length > 1 ? 's' : ''} (${r.seconds} s)\n`,
      );
    });
}

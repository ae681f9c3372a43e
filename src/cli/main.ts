/**
 * `shrink` command line. Each command parses flags, calls one library function and prints (a table, or JSON
 * with --json). Errors print one line and exit 1; no stack traces for user mistakes.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import os from 'node:os';
import { backend, getNumThreads, nativeAddon } from '../backend/registry.ts';
import { formatInspect, inspectModel } from './inspect.ts';
import { fromPretrained } from '../models/registry.ts';
import { generate } from '../models/generation.ts';
import type { CausalLM } from '../models/generation.ts';
import { loadTokenizer } from '../tokenizers/index.ts';
import { Generator } from '../tensor/random.ts';

function num(name: string, min: number, max = Infinity, integer = false) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n)))
      throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got '${v}'`);
    return n;
  };
}

const require = createRequire(import.meta.url);
const pkg = require('../../package.json') as { version: string };

export function buildProgram(out: (s: string) => void = (s) => process.stdout.write(s)): Command {
  const program = new Command();
  program
    .name('shrink')
    .description('Make transformer language models small and fast: quantization, pruning, distillation, MoE, fast feedforward and memory-augmented LMs.')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride();

  program
    .command('info')
    .description('Show the compute backend, native addon, threads and CPU')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      const addon = nativeAddon();
      const info = {
        version: pkg.version,
        backend: backend().name,
        native: addon ? { loaded: true, avx2: addon.info().avx2 } : { loaded: false },
        threads: getNumThreads(),
        cpu: os.cpus()[0]?.model ?? 'unknown',
        cores: os.cpus().length,
        node: process.version,
      };
      if (opts.json) out(JSON.stringify(info) + '\n');
      else
        out(
          [
            `shrink ${info.version}`,
            `backend   ${info.backend}${addon ? '' : ' (native addon not built: npm run build:native)'}`,
            `native    ${addon ? `loaded, ${info.native.avx2 ? 'AVX2+FMA kernels' : 'portable kernels (no AVX2/FMA)'}` : 'not loaded'}`,
            `threads   ${info.threads}`,
            `cpu       ${info.cpu} (${info.cores} cores)`,
            `node      ${info.node}`,
          ].join('\n') + '\n',
        );
    });
  program
    .command('inspect')
    .description('Show a model folder: architecture, parameters and bytes per module')
    .argument('<model>', 'Hugging Face model folder (config.json + model.safetensors)')
    .option('--json', 'print JSON')
    .action((dir: string, opts: { json?: boolean }) => {
      const r = inspectModel(dir);
      out(opts.json ? JSON.stringify({ ...r, config: undefined }) + '\n' : formatInspect(r));
    });

  program
    .command('generate')
    .description('Continue a prompt with a causal LM (GPT-2 / Llama folders): greedy, or sampling with temperature, top-k, top-p')
    .argument('<model>', 'model folder with a tokenizer (e.g. data/models/stories260K)')
    .option('-p, --prompt <text>', 'prompt text', 'Once upon a time')
    .option('-n, --max-new-tokens <n>', 'tokens to generate', num('max-new-tokens', 1, 100000, true), 64)
    .option('--temperature <t>', 'sampling temperature (implies sampling)', num('temperature', 1e-6))
    .option('--top-k <k>', 'keep the k most likely tokens (implies sampling)', num('top-k', 1, Infinity, true))
    .option('--top-p <p>', 'nucleus sampling mass (implies sampling)', num('top-p', 1e-6, 1))
    .option('--seed <s>', 'random seed', num('seed', 0, 2 ** 32, true), 0)
    .option('--json', 'print JSON')
    .action((dir: string, o: { prompt: string; maxNewTokens: number; temperature?: number; topK?: number; topP?: number; seed: number; json?: boolean }) => {
      const tok = loadTokenizer(dir);
      const model = fromPretrained(dir) as unknown as CausalLM;
      if (typeof (model as { forward?: unknown }).forward !== 'function') throw new Error(`${dir}: not a causal LM`);
      const doSample = o.temperature !== undefined || o.topK !== undefined || o.topP !== undefined;
      const prompt = tok.encode(o.prompt);
      const t0 = performance.now();
      const ids = generate(model, prompt, {
        maxNewTokens: o.maxNewTokens,
        doSample,
        temperature: o.temperature,
        topK: o.topK,
        topP: o.topP,
        eosTokenId: tok.specialIds.eos ?? null,
        generator: new Generator(o.seed),
      });
      const ms = performance.now() - t0;
      const text = tok.decode(ids);
      const newTokens = ids.length - prompt.length;
      if (o.json) out(JSON.stringify({ text, ids, newTokens, ms: +ms.toFixed(1), tokensPerS: +((newTokens / ms) * 1000).toFixed(1) }) + '\n');
      else out(`${text}\n\n(${newTokens} tokens in ${ms.toFixed(0)} ms, ${((newTokens / ms) * 1000).toFixed(1)} tokens/s)\n`);
    });
  return program;
}

/** Run the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    process.stderr.write(`shrink: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

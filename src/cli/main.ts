/**
 * `shrink` command line. Each command parses flags, calls one library function and prints (a table, or JSON
 * with --json). Errors print one line and exit 1; no stack traces for user mistakes.
 */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import os from 'node:os';
import { backend, getNumThreads, nativeAddon } from '../backend/registry.ts';

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

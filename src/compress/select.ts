/**
 * Choosing modules by checkpoint name (llm-compressor's `targets` / `ignore`): globs over the dotted names that
 * stateDict() uses, so one recipe addresses BERT, GPT-2 or Llama by their own HF names.
 *
 * Glob syntax: `*` matches one name segment (no dots), `**` any number of segments (including none), anything else
 * literally. `bert.encoder.layer.*.attention.**` or `**.dense`. A pattern `re:<regex>` is a regular expression
 * over the full name.
 */
import type { Module } from '../nn/module.ts';

function globToRegExp(glob: string): RegExp {
  if (glob.startsWith('re:')) return new RegExp(`^(?:${glob.slice(3)})$`);
  const parts = glob.split('.');
  let re = '';
  parts.forEach((p, i) => {
    const last = i === parts.length - 1;
    if (p === '**') re += last ? '.*' : '(?:[^.]+\\.)*';
    else re += p.split('*').map((s) => s.replace(/[\\^$+?()[\]{}|]/g, '\\$&')).join('[^.]*') + (last ? '' : '\\.');
  });
  return new RegExp(`^${re}$`);
}

/** Whether `name` matches any of the globs. */
export function matchesAny(name: string, globs: readonly string[]): boolean {
  return globs.some((g) => globToRegExp(g).test(name));
}

/**
 * Modules of `model` whose names match `targets` (and no `ignore` glob), optionally only instances of the given
 * classes, in tree order. The root module (name '') is never selected.
 */
export function selectModules<M extends Module>(
  model: Module,
  opts: { targets: readonly string[]; ignore?: readonly string[]; types?: readonly (abstract new (...a: never[]) => M)[] },
): [string, M][] {
  const out: [string, M][] = [];
  for (const [name, m] of model.namedModules()) {
    if (name === '' || !matchesAny(name, opts.targets) || matchesAny(name, opts.ignore ?? [])) continue;
    if (opts.types && !opts.types.some((t) => m instanceof t)) continue;
    out.push([name, m as M]);
  }
  return out;
}

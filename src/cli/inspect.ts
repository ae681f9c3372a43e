/** `shrink inspect <model>`: config summary, parameters and bytes per top-level module. */
import { readConfig } from '../io/hf.ts';
import { fromPretrained } from '../models/registry.ts';
import type { Module } from '../nn/module.ts';

export interface InspectReport {
  dir: string;
  modelType: string;
  architecture: string;
  parameters: number;
  bytes: number;
  modules: { name: string; parameters: number; bytes: number }[];
  config: Record<string, unknown>;
}

export function inspectModel(dir: string): InspectReport {
  const config = readConfig(dir);
  const model: Module = fromPretrained(dir);
  const groups = new Map<string, { parameters: number; bytes: number }>();
  for (const [name, p] of model.namedParameters()) {
    const parts = name.split('.');
    const key = parts.slice(0, Math.min(parts.length - 1, parts[0] === 'bert' || parts[0] === 'model' || parts[0] === 'transformer' ? 2 : 1)).join('.') || name;
    const g = groups.get(key) ?? { parameters: 0, bytes: 0 };
    g.parameters += p.numel;
    g.bytes += p.nbytes;
    groups.set(key, g);
  }
  const modules = [...groups.entries()].map(([name, g]) => ({ name, ...g }));
  return {
    dir,
    modelType: String(config.model_type),
    architecture: model.constructor.name,
    parameters: modules.reduce((a, m) => a + m.parameters, 0),
    bytes: modules.reduce((a, m) => a + m.bytes, 0),
    modules,
    config,
  };
}

export function formatBytes(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`;
}

export function formatInspect(r: InspectReport): string {
  const lines = [`${r.dir}: ${r.architecture} (${r.modelType}), ${r.parameters.toLocaleString('en-US')} parameters, ${formatBytes(r.bytes)}`, '', '| module | parameters | bytes |', '| --- | --- | --- |'];
  for (const m of r.modules) lines.push(`| ${m.name} | ${m.parameters.toLocaleString('en-US')} | ${formatBytes(m.bytes)} |`);
  const keys = ['hidden_size', 'n_embd', 'num_hidden_layers', 'n_layer', 'num_attention_heads', 'n_head', 'num_key_value_heads', 'intermediate_size', 'vocab_size'];
  lines.push('', keys.filter((k) => k in r.config).map((k) => `${k}=${r.config[k]}`).join(' '));
  return lines.join('\n') + '\n';
}

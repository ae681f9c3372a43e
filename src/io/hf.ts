/**
 * Hugging Face model folders (model-agnostic): config.json + model.safetensors, or sharded
 * model-0000x-of-0000y.safetensors listed by model.safetensors.index.json. Folders with only pickled PyTorch weights
 * that transformers can read (pytorch_model.bin, or shards listed by pytorch_model.bin.index.json) get an error that
 * says how to convert them; any other folder without weights gets one that says what was looked for where.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Tensor } from '../tensor/tensor.ts';
import { LazyTensor } from '../nn/module.ts';
import type { DType } from '../tensor/dtype.ts';
import { atomicWriteJson } from './atomic.ts';
import { SafetensorsFile, saveSafetensors } from './safetensors.ts';
import { MAX_JSON_FILE_BYTES, ShrinkError, asShrinkError, maxTensorBytes, show } from './errors.ts';

export const CONFIG_NAME = 'config.json';
export const WEIGHTS_NAME = 'model.safetensors';
export const WEIGHTS_INDEX_NAME = 'model.safetensors.index.json';
const SHARD_RE = /^model-\d+-of-\d+\.safetensors$/;
/** Pickled checkpoints transformers' from_pretrained loads (and so can convert): single file, or sharded with an index. */
const PICKLED_NAMES = ['pytorch_model.bin', 'pytorch_model.bin.index.json'];

function checkDir(dir: string): void {
  if (!fs.existsSync(dir)) throw new ShrinkError(`model folder ${dir} does not exist`, { file: dir });
  if (!fs.statSync(dir).isDirectory()) throw new ShrinkError(`model folder ${dir} is not a directory`, { file: dir });
}

/** The text of a JSON file of a model folder: a regular file of at most MAX_JSON_FILE_BYTES, else one error. */
function readJsonText(p: string): string {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch (e) {
    throw new ShrinkError(`${p}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file: p, cause: e });
  }
  if (!st.isFile()) throw new ShrinkError(`${p}: not a regular file`, { file: p });
  if (st.size > MAX_JSON_FILE_BYTES) throw new ShrinkError(`${p}: ${st.size} bytes is larger than the ${MAX_JSON_FILE_BYTES}-byte limit for a JSON file`, { file: p });
  try {
    return fs.readFileSync(p, 'utf8');
  } catch (e) {
    throw new ShrinkError(`${p}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { file: p, cause: e });
  }
}

/**
 * Structural numbers of the configs Shrink builds: when present (and not null) each must be a positive integer
 * below 2^31, so a model is never built from a string, a fraction or an absurd size (checked fields are those
 * that size tensors; products are checked against SHRINK_MAX_TENSOR_BYTES).
 */
const SIZE_FIELDS = [
  'vocab_size', 'hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'intermediate_size', 'max_position_embeddings',
  'type_vocab_size', 'head_dim', 'n_embd', 'n_layer', 'n_head', 'n_positions', 'n_ctx', 'n_inner', 'num_labels',
];

function checkSizes(p: string, raw: Record<string, unknown>): void {
  for (const k of SIZE_FIELDS) {
    const v = raw[k];
    if (v === undefined || v === null) continue;
    const zeroOk = k === 'type_vocab_size' || k === 'num_hidden_layers' || k === 'n_layer';
    if (typeof v !== 'number' || !Number.isInteger(v) || v < (zeroOk ? 0 : 1) || v >= 2 ** 31)
      throw new ShrinkError(`${p}: "${k}" must be an integer ${zeroOk ? '>= 0' : '>= 1'} and < 2^31, got ${show(v)}`, { file: p });
  }
  const n = (k: string) => (typeof raw[k] === 'number' ? (raw[k] as number) : 0);
  const hidden = Math.max(n('hidden_size'), n('n_embd'));
  const limit = maxTensorBytes();
  const claims: [string, number][] = [
    ['vocab_size × hidden size', n('vocab_size') * hidden],
    ['max_position_embeddings × hidden size', Math.max(n('max_position_embeddings'), n('n_positions'), n('n_ctx')) * hidden],
    ['intermediate size × hidden size', Math.max(n('intermediate_size'), n('n_inner'), 4 * hidden) * hidden],
  ];
  for (const [what, numel] of claims)
    if (numel * 4 > limit) throw new ShrinkError(`${p}: ${what} = ${numel} weights (${numel * 4} bytes as float32) is over the ${limit}-byte limit per tensor (SHRINK_MAX_TENSOR_BYTES)`, { file: p });
  // the float skeleton a config builds must be justified by the weights on disk: at most 64× their bytes (room for
  // 2-bit codes of a pruned model) plus 64 MiB; a folder without weights is bounded by 8 × the tensor limit
  const layers = Math.max(n('num_hidden_layers'), n('n_layer'));
  const inter = Math.max(n('intermediate_size'), n('n_inner'), 4 * hidden);
  const positions = Math.max(n('max_position_embeddings'), n('n_positions'), n('n_ctx'));
  const elements = layers * (4 * hidden * hidden + 2 * hidden * inter) + (n('vocab_size') + positions) * hidden;
  const onDisk = weightBytesOnDisk(path.dirname(p));
  const bound = onDisk > 0 ? 64 * onDisk + 64 * 2 ** 20 : 8 * limit;
  if (elements * 4 > bound)
    throw new ShrinkError(
      `${p}: the model it describes (${layers} layers, hidden size ${hidden}, about ${elements} weights) needs ${elements * 4} bytes, ` +
        (onDisk > 0 ? `far more than the ${onDisk} bytes of weights in the folder justify` : `over 8 × SHRINK_MAX_TENSOR_BYTES`),
      { file: p },
    );
}

/** Total bytes of the folder's safetensors files (0 when none); only names and sizes are read. */
function weightBytesOnDisk(dir: string): number {
  try {
    return fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
  } catch {
    return 0;
  }
}

/** `model_type` and `architectures` name registry entries: plain names, never Object.prototype's (constructor, __proto__, …). */
function checkNames(p: string, raw: Record<string, unknown>): void {
  const ok = (v: unknown) => typeof v === 'string' && /^[A-Za-z][\w.-]*$/.test(v) && !(v in Object.prototype);
  if (raw.model_type !== undefined && !ok(raw.model_type)) throw new ShrinkError(`${p}: "model_type" must be a model type name, got ${show(raw.model_type)}`, { file: p });
  const a = raw.architectures;
  if (a !== undefined && a !== null && !(Array.isArray(a) && a.every(ok))) throw new ShrinkError(`${p}: "architectures" must be a list of class names, got ${show(a)}`, { file: p });
}

/** The parsed config.json of a model folder (an object; one clear error naming the file otherwise). */
export function readConfig(dir: string): Record<string, unknown> {
  checkDir(dir);
  const p = path.join(dir, CONFIG_NAME);
  if (!fs.existsSync(p)) throw new ShrinkError(`${p}: missing (a Hugging Face model folder needs config.json)`, { file: p });
  const text = readJsonText(p);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ShrinkError(`${p}: invalid JSON (${(e as Error).message})`, { file: p, cause: e });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ShrinkError(`${p}: expected a JSON object, got ${Array.isArray(raw) ? 'an array' : show(raw)}`, { file: p });
  checkSizes(p, raw as Record<string, unknown>);
  checkNames(p, raw as Record<string, unknown>);
  return raw as Record<string, unknown>;
}

/** Where a folder's weights are: the safetensors files, and for a sharded checkpoint the index's weight_map. */
export interface WeightIndex {
  /** Absolute-or-as-given paths of the safetensors files, sorted. */
  files: string[];
  /** Tensor name → shard path (sharded checkpoints only). */
  weightMap: Map<string, string> | null;
  /** Path of model.safetensors.index.json (sharded checkpoints only). */
  indexPath: string | null;
}

/** Read and validate a folder's weight layout (see `findWeights`). */
export function weightIndex(dir: string): WeightIndex {
  try {
    return weightIndexUnchecked(dir);
  } catch (e) {
    throw asShrinkError(e, dir, dir, 'reading the weight layout');
  }
}

function weightIndexUnchecked(dir: string): WeightIndex {
  checkDir(dir);
  const single = path.join(dir, WEIGHTS_NAME);
  if (fs.existsSync(single)) return { files: [single], weightMap: null, indexPath: null };
  const index = path.join(dir, WEIGHTS_INDEX_NAME);
  if (fs.existsSync(index)) return readIndex(dir, index);
  const files = fs.readdirSync(dir).sort();
  // Only a checkpoint from_pretrained can read gets the conversion command (a tokenizer's tok512.bin is not one).
  const pickled = PICKLED_NAMES.filter((f) => files.includes(f));
  if (pickled.length) throw new ShrinkError(`${dir}: found ${pickled.join(', ')} but no ${WEIGHTS_NAME}. ${conversionHint(dir)}`);
  const other = files.filter((f) => f.endsWith('.safetensors'));
  if (other.length)
    throw new ShrinkError(`${dir}: no ${WEIGHTS_NAME} or ${WEIGHTS_INDEX_NAME}, only ${other.join(', ')} (a sharded checkpoint needs its index file)`);
  const shown = files.length > 10 ? `${files.slice(0, 10).join(', ')}, … and ${files.length - 10} more` : files.join(', ');
  throw new ShrinkError(
    `${dir}: no ${WEIGHTS_NAME} (or ${WEIGHTS_INDEX_NAME}) found: looked for ${[WEIGHTS_NAME, WEIGHTS_INDEX_NAME, ...PICKLED_NAMES].join(', ')} ` +
      `in ${dir}, which ${files.length ? `holds ${shown}` : 'is empty'}`,
  );
}

/**
 * The safetensors files holding a folder's weights: [model.safetensors], or the shards named by
 * model.safetensors.index.json (each checked to exist). A pickled pytorch_model.bin (or its sharded index) gets an
 * error with a conversion command.
 */
export function findWeights(dir: string): string[] {
  return weightIndex(dir).files;
}

function readIndex(dir: string, index: string): WeightIndex {
  const text = readJsonText(index);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ShrinkError(`${index}: invalid JSON (${(e as Error).message})`, { file: index, cause: e });
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new ShrinkError(`${index}: missing "weight_map" object {tensor name: shard file}`);
  const weightMap = new Map<string, string>();
  const perShard = new Map<string, string[]>();
  for (const [k, f] of Object.entries(map as Record<string, unknown>)) {
    if (typeof f !== 'string' || f === '' || f !== path.basename(f) || f === '.' || f === '..')
      throw new ShrinkError(`${index}: weight_map['${k}'] must be a file name in the model folder, got ${show(f)}`);
    const p = path.join(dir, f);
    weightMap.set(k, p);
    if (!perShard.has(p)) perShard.set(p, []);
    perShard.get(p)!.push(k);
  }
  if (weightMap.size === 0) throw new ShrinkError(`${index}: "weight_map" is empty`);
  for (const [p, keys] of perShard)
    if (!fs.existsSync(p)) throw new ShrinkError(`${index}: shard ${path.basename(p)} (${keys.length} tensors, e.g. '${keys[0]}') is missing from ${dir}`);
  return { files: [...perShard.keys()].sort(), weightMap, indexPath: index };
}

/** Python string literal for a path (single quotes). */
function pyStr(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** How to turn a pickled checkpoint folder into safetensors, with the class from config.json when known. */
function conversionHint(dir: string): string {
  let cls = 'AutoModel';
  try {
    const arch = (JSON.parse(fs.readFileSync(path.join(dir, CONFIG_NAME), 'utf8')) as { architectures?: unknown }).architectures;
    if (Array.isArray(arch) && typeof arch[0] === 'string' && /^[A-Za-z_]\w*$/.test(arch[0])) cls = arch[0];
  } catch {
    // no/invalid config.json: AutoModel (keeps the base model only)
  }
  const d = pyStr(dir);
  return (
    'Shrink reads safetensors only (pickled PyTorch files can run arbitrary code when loaded). Convert once with: ' +
    `python -c "from transformers import ${cls}; ${cls}.from_pretrained(${d}).save_pretrained(${d}, safe_serialization=True)"`
  );
}

/**
 * Every tensor of a folder's weights by checkpoint key, across shards (read one tensor at a time). For a sharded
 * checkpoint every key of the index's weight_map must be in the shard it names, and no key may be in two shards.
 */
export function loadWeights(dir: string, opts: { dtype?: DType } = {}): Map<string, Tensor> {
  try {
    return loadWeightsUnchecked(dir, opts);
  } catch (e) {
    throw asShrinkError(e, dir, dir, 'loading the weights');
  }
}

function loadWeightsUnchecked(dir: string, opts: { dtype?: DType }): Map<string, Tensor> {
  return readWeights(dir, (f, k) => f.get(k, opts), true).weights;
}

/**
 * Every tensor of a model folder (single file or sharded with an index) as a LazyTensor: the headers are read and
 * checked (duplicate keys across shards, the index's weight_map) now, the data only when a tensor is loaded, so
 * `module.loadStateDict(weights)` streams the checkpoint in one tensor at a time. close() when done.
 */
export function openWeights(dir: string): { weights: Map<string, LazyTensor>; close(): void } {
  try {
    return readWeights(dir, (f, k) => new LazyTensor(f.info(k).shape, () => f.get(k)), false);
  } catch (e) {
    throw asShrinkError(e, dir, dir, 'loading the weights');
  }
}

/** The tensors of a folder's weight files as `read` makes them; files are closed at once when `closeNow`. */
function readWeights<T>(dir: string, read: (f: SafetensorsFile, key: string) => T, closeNow: boolean): { weights: Map<string, T>; close(): void } {
  const { files, weightMap, indexPath } = weightIndex(dir);
  const out = new Map<string, T>();
  const from = new Map<string, string>();
  const open: SafetensorsFile[] = [];
  const close = () => open.splice(0).forEach((f) => f.close());
  try {
    for (const file of files) {
      const f = SafetensorsFile.open(file);
      open.push(f);
      for (const k of f.keys()) {
        if (out.has(k)) throw new ShrinkError(`${dir}: tensor '${k}' appears in both ${path.basename(from.get(k)!)} and ${path.basename(file)}`);
        out.set(k, read(f, k));
        from.set(k, file);
      }
      if (closeNow) close();
    }
    if (weightMap)
      for (const [k, shard] of weightMap)
        if (from.get(k) !== shard) throw new ShrinkError(`${indexPath}: weight_map puts '${k}' in ${path.basename(shard)} but that file has no such tensor`);
  } catch (e) {
    close();
    throw e;
  }
  return { weights: out, close };
}

export interface WritePretrainedOptions {
  config: Record<string, unknown>;
  tensors: Map<string, Tensor> | Record<string, Tensor>;
  /** safetensors `__metadata__`; `format: 'pt'` is added unless given (as transformers' save_pretrained writes). */
  metadata?: Record<string, string>;
  /** int32 tensors to store as I64. */
  int64Names?: ReadonlySet<string>;
}

/**
 * Write config.json (pretty) and model.safetensors into `dir` (created if needed), each atomically. A previous
 * sharded checkpoint in the folder (model.safetensors.index.json and model-N-of-M.safetensors) is removed afterwards,
 * as save_pretrained does, so the folder holds one set of weights.
 */
export function writePretrained(dir: string, opts: WritePretrainedOptions): void {
  const { config } = opts;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new ShrinkError(`writePretrained ${dir}: config must be an object`);
  fs.mkdirSync(dir, { recursive: true });
  saveSafetensors(path.join(dir, WEIGHTS_NAME), opts.tensors, { format: 'pt', ...(opts.metadata ?? {}) }, { int64Names: opts.int64Names });
  atomicWriteJson(path.join(dir, CONFIG_NAME), config);
  for (const f of fs.readdirSync(dir)) if (f === WEIGHTS_INDEX_NAME || SHARD_RE.test(f)) fs.rmSync(path.join(dir, f), { force: true });
}

/**
 * Checkpoints of the streaming blockwise GPTQ pass (`shrink quantize --method gptq` on a decoder), so a run stopped
 * after an hour — Ctrl-C, a kill, a crash — resumes at the last checkpointed block instead of starting over.
 *
 * The run folder (`.<out>.quantize-run`, beside the output) holds:
 * - `shrink-run.json`: the settings (model, options, a digest of the calibration tokens, shard size); another
 *   command's run is never resumed;
 * - `shards/`: the output shards written so far (moved into the output folder at the end);
 * - `checkpoint-<k>/`: after block k − 1 — `state.json` (the report so far, the shards holding blocks < k, how the
 *   carried arguments are laid out) and `activations.safetensors` (every calibration batch's arguments to block k);
 *   `latest` names the newest. A checkpoint is complete before `latest` points at it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Tensor } from '../../tensor/tensor.ts';
import { SafetensorsFile, saveSafetensors } from '../../io/safetensors.ts';
import { atomicWriteFile, atomicWriteJson } from '../../io/atomic.ts';
import type { ShardsWritten } from '../../io/shards.ts';
import type { BlockwiseState, CarriedBatch, QuantizeReport } from './apply.ts';

/** How one carried argument is stored: a tensor key, or a value kept as is (null / undefined). */
type ArgSlot = { tensor: string } | { value: null } | { undefined: true };

interface CheckpointState {
  block: number;
  report: QuantizeReport;
  shards: ShardsWritten;
  args: ArgSlot[][];
  masks: (string | null)[];
}

/** The run folder of a quantize output. */
export function quantizeRunDir(out: string): string {
  const abs = path.resolve(out);
  return path.join(path.dirname(abs), `.${path.basename(abs)}.quantize-run`);
}

/** A digest of the calibration batches (token ids and masks), so a resumed run provably uses the same data. */
export function calibrationDigest(batches: Iterable<Record<string, Tensor>>): string {
  const h = crypto.createHash('sha256');
  for (const b of batches)
    for (const k of Object.keys(b).sort()) {
      const t = b[k]!.contiguous();
      h.update(`${k}:${t.shape.join('x')}:${t.dtype};`);
      h.update(new Uint8Array(t.data.buffer, t.data.byteOffset + t.offset * t.data.BYTES_PER_ELEMENT, t.numel * t.data.BYTES_PER_ELEMENT));
    }
  return h.digest('hex');
}

/** Save the pass's state after block `state.block − 1` (its shards are already on disk) and point `latest` at it. */
export function saveGptqCheckpoint(runDir: string, state: BlockwiseState, shards: ShardsWritten): void {
  const name = `checkpoint-${state.block}`;
  const dir = path.join(runDir, name);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, Tensor>();
  const keyOf = new Map<Tensor, string>(); // arguments shared by every batch (rotary cos / sin) are stored once
  const args = state.carried.map((c, b) =>
    c.args.map((a, j): ArgSlot => {
      if (a === null) return { value: null };
      if (a === undefined) return { undefined: true };
      if (!(a instanceof Tensor)) throw new Error(`GPTQ checkpoint: batch ${b} argument ${j} is a ${typeof a}, not a tensor or null`);
      let key = keyOf.get(a);
      if (!key) {
        key = `b${b}.a${j}`;
        keyOf.set(a, key);
        tensors.set(key, a.contiguous());
      }
      return { tensor: key };
    }),
  );
  const masks = state.carried.map((c, b) => {
    if (!c.mask) return null;
    tensors.set(`b${b}.mask`, new Tensor(Float32Array.from(c.mask), [c.mask.length], 'float32'));
    return `b${b}.mask`;
  });
  saveSafetensors(path.join(dir, 'activations.safetensors'), tensors);
  atomicWriteJson(path.join(dir, 'state.json'), { block: state.block, report: state.report, shards, args, masks } satisfies CheckpointState);
  atomicWriteFile(path.join(runDir, 'latest'), name);
  for (const f of fs.readdirSync(runDir)) if (/^checkpoint-\d+$/.test(f) && f !== name) fs.rmSync(path.join(runDir, f), { recursive: true, force: true });
}

/** Read the checkpoint `latest` names. */
export function loadGptqCheckpoint(runDir: string, block: number): { state: BlockwiseState; shards: ShardsWritten } {
  const dir = path.join(runDir, `checkpoint-${block}`);
  const st = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as CheckpointState;
  const f = SafetensorsFile.open(path.join(dir, 'activations.safetensors'));
  try {
    const loaded = new Map<string, Tensor>();
    const get = (k: string) => {
      let t = loaded.get(k);
      if (!t) {
        t = f.get(k);
        loaded.set(k, t);
      }
      return t;
    };
    const carried: CarriedBatch[] = st.args.map((slots, b) => ({
      args: slots.map((s) => ('tensor' in s ? get(s.tensor) : 'value' in s ? null : undefined)),
      mask: st.masks[b] ? (get(st.masks[b]!).data as Float32Array) : null,
    }));
    return { state: { block: st.block, carried, report: st.report }, shards: st.shards };
  } finally {
    f.close();
  }
}

/**
 * A small ONNX graph builder: named initializers (float32, stored as fp32 or fp16), int64 constants, nodes with
 * attributes, graph inputs/outputs with symbolic dims; `toModel()` gives the ModelProto object that
 * onnx-proto.ts encodes. Node outputs get unique names `<hint>_<n>`.
 */
import { f32ToF16Bits } from '../tensor/dtype.ts';
import { AT, DT } from './onnx-proto.ts';

export type AttrValue = number | number[] | string | { ints: number[] } | { float: number } | { tensor: Record<string, unknown> };
export type Dim = number | string;

export interface BuilderOptions {
  /** Store float initializers as float16 (each gets a Cast to float32 in front of its first use). */
  fp16Weights?: boolean;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

export function f32ToF16Array(a: Float32Array): Uint16Array {
  const out = new Uint16Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = f32ToF16Bits(a[i]!);
  return out;
}

export class GraphBuilder {
  readonly nodes: Record<string, unknown>[] = [];
  readonly initializers: Record<string, unknown>[] = [];
  readonly inputs: Record<string, unknown>[] = [];
  readonly outputs: Record<string, unknown>[] = [];
  private names = new Set<string>();
  private counter = 0;
  private consts = new Map<string, string>();
  /** Bytes of initializer data. */
  weightBytes = 0;
  constructor(readonly opts: BuilderOptions = {}) {}

  private fresh(hint: string): string {
    let n = `${hint}_${this.counter++}`;
    while (this.names.has(n)) n = `${hint}_${this.counter++}`;
    this.names.add(n);
    return n;
  }
  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX export: duplicate tensor name '${name}'`);
    this.names.add(name);
    return name;
  }

  /** A float32 initializer (weights); with fp16Weights stored as float16 and cast back to float32 in the graph. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    const n = dims.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`ONNX export: initializer '${name}' has ${data.length} values for dims [${dims}]`);
    if (!this.opts.fp16Weights) {
      this.initializers.push({ name: this.claim(name), dims, data_type: DT.FLOAT, raw_data: bytesOf(data.slice()) });
      this.weightBytes += data.byteLength;
      return name;
    }
    const h = f32ToF16Array(data);
    const stored = this.claim(`${name}_fp16`);
    this.initializers.push({ name: stored, dims, data_type: DT.FLOAT16, raw_data: bytesOf(h) });
    this.weightBytes += h.byteLength;
    this.claim(name);
    this.nodes.push({ op_type: 'Cast', input: [stored], output: [name], name: `${name}_cast`, attribute: [{ name: 'to', type: AT.INT, i: DT.FLOAT }] });
    return name;
  }

  /** A raw initializer of any dtype (integer weights, scales). */
  raw(name: string, dataType: number, bytes: Uint8Array, dims: number[]): string {
    this.initializers.push({ name: this.claim(name), dims, data_type: dataType, raw_data: bytes.slice() });
    this.weightBytes += bytes.byteLength;
    return name;
  }

  /** An int64 constant (shapes, axes, indices), shared by value. A scalar when `scalar`. */
  i64(values: number[], scalar = false): string {
    const key = `i64:${scalar}:${values.join(',')}`;
    const had = this.consts.get(key);
    if (had) return had;
    const name = this.fresh('const_i64');
    const buf = new BigInt64Array(values.map((v) => BigInt(v)));
    this.initializers.push({ name, dims: scalar ? [] : [values.length], data_type: DT.INT64, raw_data: bytesOf(buf) });
    this.consts.set(key, name);
    return name;
  }

  /** A float32 constant (scalars for eps, scale, mask values), shared by value; never stored as fp16. */
  f32(values: number[], scalar = true): string {
    const key = `f32:${scalar}:${values.join(',')}`;
    const had = this.consts.get(key);
    if (had) return had;
    const name = this.fresh('const_f32');
    this.initializers.push({ name, dims: scalar ? [] : [values.length], data_type: DT.FLOAT, raw_data: bytesOf(Float32Array.from(values)) });
    this.consts.set(key, name);
    return name;
  }

  /** Add a node; returns its output names (`nOut` fresh names from `hint`, or the given names). */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, out: number | string[] = 1, hint = opType.toLowerCase(), domain = ''): string[] {
    const outputs = typeof out === 'number' ? Array.from({ length: out }, () => this.fresh(hint)) : out.map((n) => this.claim(n));
    const attribute = Object.entries(attrs).map(([name, v]) => {
      if (typeof v === 'number') return Number.isInteger(v) ? { name, type: AT.INT, i: v } : { name, type: AT.FLOAT, f: v };
      if (typeof v === 'string') return { name, type: AT.STRING, s: new TextEncoder().encode(v) };
      if (Array.isArray(v)) return { name, type: AT.INTS, ints: v };
      if ('ints' in v) return { name, type: AT.INTS, ints: v.ints };
      if ('float' in v) return { name, type: AT.FLOAT, f: v.float };
      return { name, type: AT.TENSOR, t: v.tensor };
    });
    this.nodes.push({ op_type: opType, domain, input: inputs, output: outputs, name: this.fresh(`${hint}_node`), attribute });
    return outputs;
  }
  /** One-output node. */
  op1(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, hint?: string): string {
    return this.op(opType, inputs, attrs, 1, hint)[0]!;
  }

  input(name: string, elemType: number, dims: Dim[]): string {
    this.inputs.push(valueInfo(this.claim(name), elemType, dims));
    return name;
  }
  /** Mark `value` as graph output `name` (an Identity renames it). */
  output(value: string, name: string, elemType: number, dims: Dim[]): void {
    this.op('Identity', [value], {}, [name]);
    this.outputs.push(valueInfo(name, elemType, dims));
  }

  toModel(meta: { opset: number; irVersion: number; producerVersion: string; docString: string; props: Record<string, string>; extraOpsets?: { domain: string; version: number }[] }): Record<string, unknown> {
    return {
      ir_version: meta.irVersion,
      opset_import: [{ domain: '', version: meta.opset }, ...(meta.extraOpsets ?? [])],
      producer_name: 'shrink-lm',
      producer_version: meta.producerVersion,
      doc_string: meta.docString,
      graph: { name: 'main_graph', node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
      metadata_props: Object.entries(meta.props).map(([key, value]) => ({ key, value })),
    };
  }
}

function valueInfo(name: string, elemType: number, dims: Dim[]): Record<string, unknown> {
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } } };
}

import path from 'node:path';
import { DATA_DIR, LlamaForCausalLM, fromPretrained, compress, calibrationBatches } from 'shrink-lm';
const dir = path.join(DATA_DIR, 'models', 'stories260K');
const text = path.join(DATA_DIR, 'tinystories-samples', 'stories260K-samples.txt');
const batches = calibrationBatches(dir, text, { samples: 16, seqLen: 128 });
const model = fromPretrained<LlamaForCausalLM>(dir);
const report = compress.quant.quantizeModel(model, { scheme: 'int4', groupSize: 64, method: 'gptq', calibration: () => batches });
compress.quant.saveQuantized(model, 'out/q', { scheme: 'int4', bits: 4, method: 'gptq', granularity: 'group:64' });
// or the whole folder, tokenizer included, streaming: compress.quant.quantizeFolder(dir, 'out/q', { scheme: 'int8' })
console.log(report);

/**
 * Shrink: make transformer language models small and fast. This is the public surface; import nothing else.
 */
export { Tensor, tensor, type TensorLike, type TensorOptions } from './tensor/tensor.ts';
export * from './tensor/creation.ts';
export { DTYPES, type DType } from './tensor/dtype.ts';
export { Generator, manualSeed, defaultGenerator } from './tensor/random.ts';
export { noGrad, enableGrad, isGradEnabled, defineOp, profileOps, OP_REGISTRY, type Op, type OpTime } from './tensor/autograd.ts';
export * as ops from './ops/index.ts';
export {
  add, sub, mul, div, pow, maximum, minimum, where, maskedFill, clamp, gelu, geluTanh, silu, relu, sigmoid, tanh, exp, log, sqrt, erf,
  sum, mean, amax, amin, logsumexp, norm, reshape, transpose, permute, narrow, expand, squeeze, unsqueeze, cat, stack, split, chunk,
  indexSelect, gather, scatterAdd, matmul, linear, softmax, logSoftmax, layerNorm, rmsNorm, embedding, dropout, crossEntropy, mseLoss,
  klDiv, softCrossEntropy, topk, oneHot, cumsum, movedim,
} from './ops/index.ts';
export { backend, setBackend, setNumThreads, getNumThreads, nativeAddon, type BackendName } from './backend/registry.ts';
export * from './nn/index.ts';
export { SafetensorsFile, loadSafetensors, saveSafetensors, readSafetensorsBuffer } from './io/safetensors.ts';
export { readConfig, loadWeights, findWeights, writePretrained } from './io/hf.ts';
export { atomicWriteFile, atomicWriteJson } from './io/atomic.ts';
export { fromPretrained, savePretrained, modelFromConfig, supportedModelTypes, MODEL_REGISTRY } from './models/registry.ts';
export { BertModel, BertForMaskedLM, BertForSequenceClassification, bertConfig } from './models/bert/modeling.ts';
export { GPT2Model, GPT2LMHeadModel, gpt2Config } from './models/gpt2/modeling.ts';
export { LlamaModel, LlamaForCausalLM, llamaConfig } from './models/llama/modeling.ts';
export { generate, KVCache, type GenerateOptions } from './models/generation.ts';
export type { ModelInputs, ModelOutput, ForwardOptions } from './models/outputs.ts';
export { loadTokenizer, SentencePieceBPETokenizer, type Tokenizer } from './tokenizers/index.ts';
export * as metrics from './eval/metrics.ts';
export * from './data/index.ts';
export { Trainer, type TrainerConfig, type TrainerHooks, type TrainResult, type LogEntry } from './train/trainer.ts';
export * as compress from './compress/index.ts';

/**
 * Every op, by family. `OP_REGISTRY` (src/tensor/autograd.ts) holds the differentiable primitives declared with
 * defineOp; the functions exported here include composites built from them.
 */
export * from './elementwise.ts';
export * from './reduce.ts';
export * from './movement.ts';
export * from './matmul.ts';
export * from './nn.ts';
export { OP_REGISTRY } from '../tensor/autograd.ts';

// The Method interface, recipes and module-name globs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GPT2LMHeadModel, Tensor, compress, gpt2Config, manualSeed, noGrad } from '../../src/index.ts';
import { expectThrows } from '../harness/expect.ts';

const { matchesAny, methodNames, runRecipe, selectModules, quant } = compress;

test('globs over checkpoint names: * is one segment, ** any number, re: a regular expression', () => {
  assert.ok(matchesAny('bert.encoder.layer.3.attention.self.query', ['bert.encoder.layer.*.attention.**']));
  assert.ok(matchesAny('bert.encoder.layer.3.output.dense', ['**.dense']));
  assert.ok(!matchesAny('bert.encoder.layer.3.output.dense', ['bert.*.dense']));
  assert.ok(matchesAny('transformer.h.11.mlp.c_fc', ['transformer.h.1*.mlp.*']));
  assert.ok(matchesAny('lm_head', ['re:lm_.*']));
  assert.ok(!matchesAny('xlm_head', ['re:lm_.*']));
});

function tinyGpt2(): GPT2LMHeadModel {
  manualSeed(3);
  return new GPT2LMHeadModel(gpt2Config({ vocab_size: 64, n_positions: 32, n_embd: 32, n_layer: 2, n_head: 2 })).eval();
}

test('a recipe applies quant.rtn to the targeted modules and reports bits per weight', () => {
  const m = tinyGpt2();
  const { reports, recipeJson } = runRecipe(m, [{ method: 'quant.rtn', scheme: 'int4', granularity: 'group:16', targets: ['transformer.h.*.mlp.*'] }]);
  const swapped = selectModules(m, { targets: ['**'], types: [quant.QuantLinear] }).map(([n]) => n);
  assert.deepEqual(swapped, ['transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj', 'transformer.h.1.mlp.c_fc', 'transformer.h.1.mlp.c_proj']);
  assert.equal(reports[0]!.method, 'quant.rtn');
  // 4-bit codes plus a float32 scale and a uint8 zero point per 16 weights
  assert.equal(reports[0]!.bits_per_weight, 4 + (32 + 8) / 16);
  assert.equal(JSON.parse(recipeJson)[0].scheme, 'int4');
  const ids = Tensor.from(Int32Array.from([1, 2, 3]), { shape: [1, 3] });
  assert.equal(noGrad(() => m.forward({ inputIds: ids }).logits).shape.join(), '1,3,64');
});

test('recipe errors name the method or option', () => {
  assert.ok(methodNames().includes('quant.gptq') && methodNames().includes('quant.qat'));
  expectThrows(() => runRecipe(tinyGpt2(), [{ method: 'quant.nope' }]), "unknown method 'quant.nope' (known: ");
  expectThrows(() => runRecipe(tinyGpt2(), [{ method: 'quant.rtn', sceme: 'int8' }]), "recipe step 'quant.rtn': unknown option 'sceme' (options: scheme, bits, granularity");
  expectThrows(() => runRecipe(tinyGpt2(), [{ method: 'quant.gptq' }]), 'quant.gptq needs calibration batches');
});

test('quant.qat trains through fake-quant layers and finalizes to integers', () => {
  const m = tinyGpt2();
  let trained = false;
  runRecipe(m, [{ method: 'quant.qat', scheme: 'int8' }], {}, () => {
    assert.ok(selectModules(m, { targets: ['**'], types: [quant.FakeQuantLinear] }).length === 8);
    trained = true;
  });
  assert.ok(trained);
  assert.equal(selectModules(m, { targets: ['**'], types: [quant.FakeQuantLinear] }).length, 0);
  assert.equal(selectModules(m, { targets: ['**'], types: [quant.QuantLinear] }).length, 9); // 8 layers + the tied head
});

// GLUE metrics against values computed by hand (and as sklearn defines them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accuracy, f1, matthews, perplexity } from '../../src/eval/metrics.ts';
import { expectThrows } from '../harness/expect.ts';

const preds = [1, 1, 0, 0, 1, 0, 1, 1];
const labels = [1, 0, 0, 1, 1, 0, 0, 1];
// tp = 3 (0,4,7), fp = 2 (1,6), tn = 2 (2,5), fn = 1 (3)

test('accuracy', () => assert.equal(accuracy(preds, labels), 5 / 8));
test('f1 of the positive class', () => assert.equal(f1(preds, labels), 6 / 9));
test('matthews correlation', () => assert.ok(Math.abs(matthews(preds, labels) - (3 * 2 - 2 * 1) / Math.sqrt(5 * 4 * 4 * 3)) < 1e-15));
test('degenerate cases are 0, not NaN', () => {
  assert.equal(matthews([1, 1], [1, 1]), 0);
  assert.equal(f1([0, 0], [0, 0]), 0);
});
test('perplexity', () => assert.ok(Math.abs(perplexity(Math.log(7) * 10, 10) - 7) < 1e-12));
test('length mismatch is an error', () => expectThrows(() => accuracy([1], [1, 0]), 'accuracy: 1 predictions but 2 labels'));

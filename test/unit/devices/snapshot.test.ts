import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  StateFields, arrayField, assignFields, bitsField, booleanField, byteField, checkFields, copyPlain, decimalBigIntField,
  finiteNumberField, integerField, isSnapshottable, loadFields, nullableField, oneOfField, pickFields, recordField, restoreFields,
  saveFields,
} from '../../../src/devices/snapshot';

// A made-up device record using every kind of field.
interface Live {
  count: number;
  flag: boolean;
  when: bigint;
  mode: 'a' | 'b';
  latch: number | null;
  bytes: number[];
  pair: { low: number; high: number };
  ratio: number;
}
interface Saved {
  count: number;
  flag: boolean;
  /** A bigint, as a decimal string. */
  when: string;
  mode: 'a' | 'b';
  latch: number | null;
  bytes: number[];
  pair: { low: number; high: number };
  ratio: number;
}
const PAIR_FIELDS: StateFields<Live['pair'], Saved['pair']> = { low: byteField, high: bitsField(0xf0) };
const FIELDS: StateFields<Live, Saved> = {
  count: integerField(1, 10),
  flag: booleanField,
  when: decimalBigIntField,
  mode: oneOfField(['a', 'b']),
  latch: nullableField(byteField),
  bytes: arrayField(byteField, { atMost: 3 }),
  pair: recordField(PAIR_FIELDS, () => ({ low: 0, high: 0 })),
  ratio: finiteNumberField,
};

function live(): Live {
  return { count: 3, flag: true, when: 12_345_678_901_234_567_890n, mode: 'b', latch: null, bytes: [1, 2], pair: { low: 5, high: 0x30 }, ratio: 0.5 };
}

test('saveFields: plain JSON data, bigints as decimal strings, sharing nothing with the model', () => {
  const model = live();
  const saved = saveFields(model, FIELDS);
  assert.equal(saved, { count: 3, flag: true, when: '12345678901234567890', mode: 'b', latch: null, bytes: [1, 2], pair: { low: 5, high: 0x30 }, ratio: 0.5 });
  assert.equal(JSON.parse(JSON.stringify(saved)), saved);
  saved.bytes.push(3);
  saved.pair.low = 6;
  assert.equal(model.bytes, [1, 2]);
  assert.is(model.pair.low, 5);
});

test('restoreFields: loads in place (the same object), bigints back from strings, sharing nothing with the state', () => {
  const model = live();
  const saved = saveFields(model, FIELDS);
  const target: Live = { count: 1, flag: false, when: 0n, mode: 'a', latch: 7, bytes: [], pair: { low: 0, high: 0 }, ratio: 0 };
  const same = target;
  restoreFields(target, JSON.parse(JSON.stringify(saved)), FIELDS, (p) => new Error(p));
  assert.ok(target === same);
  assert.equal(target, model);
  assert.is(typeof target.when, 'bigint');
  const state = saveFields(model, FIELDS);
  loadFields(target, state, FIELDS);
  state.bytes.push(9);
  assert.equal(target.bytes, [1, 2]);
});

test('checkFields names the first bad field by its path, or says nothing', () => {
  const good = saveFields(live(), FIELDS);
  assert.is(checkFields(good, FIELDS), undefined);
  const problem = (change: Record<string, unknown>) => checkFields({ ...good, ...change }, FIELDS);
  assert.is(problem({ count: 0 }), 'count is 0, not an integer 1..10');
  assert.is(problem({ count: 2.5 }), 'count is 2.5, not an integer 1..10');
  assert.is(problem({ count: undefined }), 'count is missing, not an integer 1..10');
  assert.is(problem({ flag: 'yes' }), 'flag is "yes", not true or false');
  assert.is(problem({ when: 12 }), 'when is 12, not a non-negative integer as a decimal string');
  assert.is(problem({ when: '-1' }), 'when is "-1", not a non-negative integer as a decimal string');
  assert.is(problem({ when: '007' }), 'when is "007", not a non-negative integer as a decimal string');
  assert.is(problem({ mode: 'c' }), 'mode is "c", not one of a, b');
  assert.is(problem({ latch: 256 }), 'latch is 256, not a byte');
  assert.is(problem({ bytes: [1, 2, 3, 4] }), 'bytes has 4 entries, more than 3');
  assert.is(problem({ bytes: [1, -2] }), 'bytes[1] is -2, not a byte');
  assert.is(problem({ bytes: {} }), 'bytes is an object, not an array');
  assert.is(problem({ pair: { low: 1, high: 0x31 } }), 'pair.high is 49, not a value within the bits 0xf0');
  assert.is(problem({ pair: { low: 1 } }), 'pair.high is missing, not a value within the bits 0xf0');
  assert.is(problem({ pair: [1, 2] }), 'pair is an array of 2, not an object');
  assert.is(problem({ pair: { low: 1, high: 0, middle: 2 } }), "pair has a field 'middle' that this version does not know");
  assert.is(problem({ ratio: Infinity }), 'ratio is Infinity, not a finite number');
  assert.is(problem({ extra: 1 }), "the state has a field 'extra' that this version does not know");
  assert.is(checkFields(null, FIELDS), 'the state is null, not an object');
  assert.is(checkFields('x', FIELDS), 'the state is "x", not an object');
  assert.is(checkFields({ ...good, bytes: [1, 2, 3, 4], count: 0 }, FIELDS), 'count is 0, not an integer 1..10'); // in field-list order
});

test('restoreFields: a bad state throws fail(problem) and changes nothing, even fields before the bad one', () => {
  const model = live();
  const before = saveFields(model, FIELDS);
  const bad = { ...before, count: 9, flag: false, ratio: 'x' };
  assert.throws(() => restoreFields(model, bad, FIELDS, (p) => new RangeError(`cannot restore: ${p}`)),
    (e: unknown) => e instanceof RangeError && e.message === 'cannot restore: ratio is "x", not a finite number');
  assert.equal(saveFields(model, FIELDS), before);
});

test('bitsField handles the top bit of a 32-bit value', () => {
  const field = bitsField(0xff00_0000);
  assert.is(field.check(0xff00_0000, 'v'), undefined);
  assert.is(field.check(0x0100_0000, 'v'), undefined);
  assert.is(field.check(0x1_0000_0000, 'v'), 'v is 4294967296, not a value within the bits 0xff000000');
  assert.is(field.check(0x00ff_ffff, 'v'), 'v is 16777215, not a value within the bits 0xff000000');
  assert.is(field.check(-1, 'v'), 'v is -1, not a value within the bits 0xff000000');
});

test('arrayField with an exact length', () => {
  const field = arrayField(booleanField, { exactly: 2 });
  assert.is(field.check([true, false], 'levels'), undefined);
  assert.is(field.check([true], 'levels'), 'levels has 1 entry, not 2');
});

test('pickFields and assignFields copy arrays and plain objects', () => {
  const source = { a: [1, 2], b: { c: 3 }, d: 4 };
  const picked = pickFields(source, ['a', 'b']);
  assert.equal(picked, { a: [1, 2], b: { c: 3 } });
  picked.a.push(9);
  assert.equal(source.a, [1, 2]);
  const target = { a: [0], b: { c: 0 }, d: 0 };
  assignFields(target, picked, ['a', 'b']);
  picked.b.c = 7;
  assert.equal(target, { a: [1, 2, 9], b: { c: 3 }, d: 0 });
  assert.equal(copyPlain([{ x: [1] }]), [{ x: [1] }]);
});

test('isSnapshottable: snapshot and restore both functions', () => {
  assert.ok(isSnapshottable({ snapshot: () => 1, restore: () => {} }));
  assert.not.ok(isSnapshottable({ snapshot: () => 1 }));
  assert.not.ok(isSnapshottable({ state: () => 1, restore: 1 }));
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { SetupDataError, rngSeedEntry, writeSetupData } from '../../../../src/main/arch/setup-data';

const lowMemory = (): GuestMemory => GuestMemory.allocate([{ guestAddress: 0, size: 0x100000 }]);

/** Walks the chain as the kernel does: {next u64, type u32, len u32, data}. */
function walk(mem: GuestMemory, first: number): Array<{ at: number; type: number; data: number[] }> {
  const nodes = [];
  for (let at = first; at !== 0; at = Number(mem.readU64(at))) {
    const len = mem.readU32(at + 12);
    nodes.push({ at, type: mem.readU32(at + 8), data: Array.from(mem.read(at + 16, len)) });
  }
  return nodes;
}

test('no entries: the pointer is 0 and nothing is written', () => {
  const mem = lowMemory();
  assert.is(writeSetupData(mem, []), 0);
  assert.ok(mem.read(0x10000, 0x100).every((b) => b === 0));
});

test('entries form a chain from 0x10000, each node 8-byte aligned', () => {
  const mem = lowMemory();
  const first = writeSetupData(mem, [
    { type: 9, data: Uint8Array.from({ length: 32 }, (_, i) => i) },
    { type: 2, data: Uint8Array.from([1, 2, 3, 4, 5]) },
    { type: 7, data: Uint8Array.from([6, 7, 8]) },
  ]);
  assert.is(first, 0x10000);
  // 0x10000 + 16 + 32 = 0x10030; 0x10030 + 16 + 5 = 0x10045, aligned up to 0x10048
  assert.equal(walk(mem, first), [
    { at: 0x10000, type: 9, data: Array.from({ length: 32 }, (_, i) => i) },
    { at: 0x10030, type: 2, data: [1, 2, 3, 4, 5] },
    { at: 0x10048, type: 7, data: [6, 7, 8] },
  ]);
  assert.is(mem.readU64(0x10048), 0n, 'the last node ends the list');
});

test('an entry ending exactly at SETUP_DATA_END 0x20000 fits; one byte more does not', () => {
  assert.is(writeSetupData(lowMemory(), [{ type: 1, data: new Uint8Array(0x10000 - 16) }]), 0x10000);
  assert.throws(
    () => writeSetupData(lowMemory(), [{ type: 1, data: new Uint8Array(0x10000 - 15) }]),
    (error: Error) => error instanceof SetupDataError && /need 0x10001 bytes but 0x10000\.\.0x20000 holds 0x10000/.test(error.message),
  );
});

test('the second entry overflowing is refused and nothing is written', () => {
  const mem = lowMemory();
  assert.throws(() => writeSetupData(mem, [{ type: 1, data: new Uint8Array(8) }, { type: 1, data: new Uint8Array(0x10000) }]), (error: Error) => error instanceof SetupDataError);
  assert.is(mem.readU32(0x10008), 0);
});

test('setup data without RAM at 0x10000 is refused', () => {
  const mem = GuestMemory.allocate([{ guestAddress: 0x100000, size: 0x100000 }]);
  assert.throws(() => writeSetupData(mem, [{ type: 9, data: new Uint8Array(32) }]), (error: Error) => error instanceof SetupDataError);
});

test('rngSeedEntry asks the injected source for 32 bytes and makes a type 9 entry', () => {
  const asked: number[] = [];
  const entry = rngSeedEntry((n) => {
    asked.push(n);
    return new Uint8Array(n).fill(0x5a);
  });
  assert.equal(asked, [32]);
  assert.is(entry.type, 9);
  assert.equal(Array.from(entry.data), new Array(32).fill(0x5a));
  assert.throws(() => rngSeedEntry(() => new Uint8Array(16)), (error: Error) => error instanceof SetupDataError);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory, GuestMemoryError } from '../../../../src/main/arch/guest-memory';

const memory = () => GuestMemory.allocate([
  { guestAddress: 0x1_0000_0000, size: 0x1000 },
  { guestAddress: 0, size: 0x2000 },
]);

test('regions are sorted and sized', () => {
  const m = memory();
  assert.equal(m.regions.map((r) => r.guestAddress), [0, 0x1_0000_0000]);
  assert.is(m.totalSize, 0x3000);
  assert.is(m.end, 0x1_0000_1000);
});

test('little-endian accessors round-trip in both regions', () => {
  const m = memory();
  m.writeU32(0x10, 0x11223344);
  assert.equal(Array.from(m.read(0x10, 4)), [0x44, 0x33, 0x22, 0x11]);
  m.writeU64(0x1_0000_0ff8, 0x0102030405060708n);
  assert.is(m.readU64(0x1_0000_0ff8), 0x0102030405060708n);
  assert.is(m.readU16(0x10), 0x3344);
});

test('a range outside RAM or across a gap is an error, never split', () => {
  const m = memory();
  assert.is(m.contains(0x1ffc, 4), true);
  assert.is(m.contains(0x1ffc, 5), false);
  assert.throws(() => m.write(0x1ffe, new Uint8Array(4)), (e: Error) => e instanceof GuestMemoryError && /0x1ffe\.\.0x2002 is not inside guest RAM/.test(e.message));
  assert.throws(() => m.readU8(0x5000), (e: Error) => e instanceof GuestMemoryError);
  assert.throws(() => m.slice(-1, 1), (e: Error) => e instanceof GuestMemoryError);
});

test('overlapping regions are refused', () => {
  assert.throws(() => GuestMemory.allocate([{ guestAddress: 0, size: 0x2000 }, { guestAddress: 0x1000, size: 0x1000 }]), /overlap/);
});

test.run();

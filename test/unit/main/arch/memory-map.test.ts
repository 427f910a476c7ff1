import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { guestMemoryLayout, MemoryMapError } from '../../../../src/main/arch/memory-map';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

test('128 MiB is one region from 0', () => {
  assert.equal(guestMemoryLayout(128 * MiB), [{ guestAddress: 0, size: 0x800_0000 }]);
});

test('3 GiB still fits below the MMIO gap', () => {
  assert.equal(guestMemoryLayout(3 * GiB), [{ guestAddress: 0, size: 0xc000_0000 }]);
});

test('exactly 3.25 GiB fills RAM up to the gap start and needs no high region', () => {
  assert.equal(guestMemoryLayout(3.25 * GiB), [{ guestAddress: 0, size: 0xd000_0000 }]);
});

test('4 GiB: 3.25 GiB low, the remaining 768 MiB at 4 GiB', () => {
  assert.equal(guestMemoryLayout(4 * GiB), [
    { guestAddress: 0, size: 0xd000_0000 },
    { guestAddress: 0x1_0000_0000, size: 0x3000_0000 },
  ]);
});

test('6 GiB: 3.25 GiB low, 2.75 GiB at 4 GiB', () => {
  assert.equal(guestMemoryLayout(6 * GiB), [
    { guestAddress: 0, size: 0xd000_0000 },
    { guestAddress: 0x1_0000_0000, size: 0xb000_0000 },
  ]);
});

test('sizes that are not positive whole pages are rejected', () => {
  for (const bad of [0, -4096, 4097, 1.5, Number.NaN, 128 * MiB + 1]) {
    assert.throws(() => guestMemoryLayout(bad), (e: unknown) => e instanceof MemoryMapError, `size ${bad}`);
  }
});

test('the page-multiple error suggests the rounded size', () => {
  assert.throws(() => guestMemoryLayout(4097), /round it to 8192/);
});

test.run();

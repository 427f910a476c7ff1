import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { InitrdError, loadInitrd, placeInitrd } from '../../../../src/main/arch/initrd';
import { writePvhStartInfo } from '../../../../src/main/arch/pvh';
import { PVH_MODLIST_START } from '../../../../src/main/layout';

const MIB = 1024 * 1024;

test('128 MiB: the initrd ends at the top of RAM, rounded down to a page', () => {
  // 0x8000000 - 0x100001 = 0x7efffff, page-aligned down to 0x7eff000
  const address = placeInitrd({ size: 0x100001, kernelEnd: 0x1200000, initrdAddrMax: 0x7fffffff, memoryLayout: [{ guestAddress: 0, size: 128 * MIB }] });
  assert.is(address, 0x7eff000);
});

test("initrd_addr_max is the highest byte: boot.rst's 131072-byte ramdisk under 0x37ffffff starts at 0x37fe0000", () => {
  const address = placeInitrd({ size: 131072, kernelEnd: 0x1200000, initrdAddrMax: 0x37ffffff, memoryLayout: [{ guestAddress: 0, size: 1024 * MIB }] });
  assert.is(address, 0x37fe0000);
});

test('6 GiB: the initrd stays in the RAM below the gap', () => {
  const memoryLayout = [{ guestAddress: 0, size: 0xd0000000 }, { guestAddress: 0x100000000, size: 0xb0000000 }];
  assert.is(placeInitrd({ size: 0x1000, kernelEnd: 0x1200000, initrdAddrMax: 0x7fffffff, memoryLayout }), 0x7ffff000);
  assert.is(placeInitrd({ size: 0x1000, kernelEnd: 0x1200000, memoryLayout }), 0xcffff000);
});

test('an initrd filling everything from the kernel end to the top of RAM fits exactly', () => {
  assert.is(placeInitrd({ size: 0xe00000, kernelEnd: 0x1200000, memoryLayout: [{ guestAddress: 0, size: 32 * MIB }] }), 0x1200000);
});

test('an initrd that would overlap the kernel is refused with sizes and the fix', () => {
  assert.throws(
    () => placeInitrd({ size: 20 * MIB, kernelEnd: 0x1200000, memoryLayout: [{ guestAddress: 0, size: 32 * MIB }] }),
    (error: Error) =>
      error instanceof InitrdError &&
      error.message === 'initrd of 20.0 MiB does not fit between the kernel end 0x1200000 and 0x2000000; give the guest more memory (--mem)',
  );
  assert.throws(() => placeInitrd({ size: 0xe00001, kernelEnd: 0x1200000, memoryLayout: [{ guestAddress: 0, size: 32 * MIB }] }), (error: Error) => error instanceof InitrdError);
});

test('a kernel end outside RAM or an empty initrd is refused', () => {
  assert.throws(() => placeInitrd({ size: 0x1000, kernelEnd: 0x3000000, memoryLayout: [{ guestAddress: 0, size: 32 * MIB }] }), (error: Error) => error instanceof InitrdError);
  assert.throws(() => placeInitrd({ size: 0, kernelEnd: 0x1200000, memoryLayout: [{ guestAddress: 0, size: 32 * MIB }] }), (error: Error) => error instanceof InitrdError);
});

test('loadInitrd copies the bytes and refuses a range outside RAM', () => {
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 2 * MIB }]);
  loadInitrd(mem, Uint8Array.from([1, 2, 3]), 0x1ff000);
  assert.equal(Array.from(mem.read(0x1ff000, 4)), [1, 2, 3, 0]);
  assert.throws(() => loadInitrd(mem, new Uint8Array(0x1001), 0x1ff000), (error: Error) => error instanceof InitrdError);
});

test('--mem 2100 with a 60 MiB initrd: placed at the top of RAM across the 2 GiB slot seam and loaded whole', () => {
  // The VMM backs 2100 MiB with two slots, 0..0x80000000 and 0x80000000..0x83400000.
  const size = 60 * MIB + 123;
  const layout = [{ guestAddress: 0, size: 2100 * MIB }];
  const address = placeInitrd({ size, kernelEnd: 0x1200000, memoryLayout: layout });
  assert.is(address, Math.floor((2100 * MIB - size) / 0x1000) * 0x1000);
  assert.ok(address < 0x80000000 && address + size > 0x80000000, 'the placement straddles the seam');
  const small = (guestAddress: number, bytes: number) => ({ guestAddress, size: bytes, bytes: new Uint8Array(bytes) });
  // Only the neighbourhood of the seam is backed here, to keep the test small.
  const low = small(address, 0x80000000 - address);
  const high = small(0x80000000, 2100 * MIB - 0x80000000);
  const lowTables = small(0, 0x100000);
  const mem = new GuestMemory([lowTables, low, high]);
  const initrd = Uint8Array.from({ length: size }, (_, i) => (i * 13 + 5) & 0xff);
  loadInitrd(mem, initrd, address);
  assert.equal(mem.read(address, 0x80000000 - address), initrd.subarray(0, 0x80000000 - address));
  assert.equal(mem.read(0x80000000, address + size - 0x80000000), initrd.subarray(0x80000000 - address));
  // PVH hands it on as one module.
  mem.fill(0x20000, 1, 0);
  writePvhStartInfo(mem, { cmdlineAddress: 0x20000, memoryMap: [{ addr: 0, size: 2100 * MIB, type: 1 }], initrd: { address, size } });
  assert.is(mem.readU64(PVH_MODLIST_START), BigInt(address));
});

test('loadInitrd refuses a range with a hole, naming the fix rather than a function', () => {
  const mem = new GuestMemory([
    { guestAddress: 0, size: 0x2000, bytes: new Uint8Array(0x2000) },
    { guestAddress: 0x3000, size: 0x1000, bytes: new Uint8Array(0x1000) },
  ]);
  assert.throws(() => loadInitrd(mem, new Uint8Array(0x2000), 0x1000), (error: Error) =>
    error instanceof InitrdError && error.message === 'the initrd (8192 bytes at 0x1000) does not lie in guest RAM; give the guest more memory (--mem)');
});

test.run();

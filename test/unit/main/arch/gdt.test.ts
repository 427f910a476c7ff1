import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import {
  BOOT_CODE_SELECTOR, BOOT_DATA_SELECTOR, BOOT_TSS_SELECTOR, GdtError, LONG_MODE_GDT, PVH_GDT,
  gdtEntry, segmentFromDescriptor, writeBootGdt, writeBootIdt,
} from '../../../../src/main/arch/gdt';

// Descriptor values worked out by hand from SDM Vol. 3A figure 3-8 and
// matching the ones crosvm's and Firecracker's regs.rs tests assert.
const CODE64 = 0x00af_9b00_0000_ffffn;
const DATA = 0x00cf_9300_0000_ffffn;
const TSS64 = 0x008f_8b00_0000_ffffn;
const PVH_CODE32 = 0x00cf_9b00_0000_ffffn;
const PVH_TSS32 = 0x0000_8b00_0000_0067n;

test('gdtEntry encodes the long-mode boot descriptors', () => {
  assert.is(gdtEntry(0, 0, 0), 0n);
  assert.is(gdtEntry(0xa09b, 0, 0xfffff), CODE64);
  assert.is(gdtEntry(0xc093, 0, 0xfffff), DATA);
  assert.is(gdtEntry(0x808b, 0, 0xfffff), TSS64);
});

test('gdtEntry splits base and limit across the descriptor', () => {
  // base 0x12345678: 0x12 -> bits 63:56, 0x345678 -> bits 39:16; limit 0xabcde: 0xa -> bits 51:48.
  assert.is(gdtEntry(0x009b, 0x1234_5678, 0xabcde), 0x120a_9b34_5678_bcden);
});

test('gdtEntry drops limit bits above 19, so 0xffffffff encodes like 0xfffff', () => {
  assert.is(gdtEntry(0xc09b, 0, 0xffff_ffff), PVH_CODE32);
  assert.is(gdtEntry(0x008b, 0, 0x67), PVH_TSS32);
});

test('gdtEntry rejects values that do not fit', () => {
  assert.throws(() => gdtEntry(0x1_0000, 0, 0), (e: unknown) => e instanceof GdtError);
  assert.throws(() => gdtEntry(0, -1, 0), (e: unknown) => e instanceof GdtError);
});

test('the boot tables are null, code, data, TSS', () => {
  assert.equal([...LONG_MODE_GDT], [0n, CODE64, DATA, TSS64]);
  assert.equal([...PVH_GDT], [0n, PVH_CODE32, DATA, PVH_TSS32]);
  assert.is(BOOT_CODE_SELECTOR, 0x08);
  assert.is(BOOT_DATA_SELECTOR, 0x10);
  assert.is(BOOT_TSS_SELECTOR, 0x18);
});

test('64-bit code segment fields', () => {
  assert.equal(segmentFromDescriptor(CODE64, 1), {
    base: 0n, limit: 0xffff_ffff, selector: 0x08, type: 0xb, present: 1, dpl: 0,
    db: 0, s: 1, l: 1, g: 1, avl: 0, unusable: 0,
  });
});

test('data segment fields', () => {
  assert.equal(segmentFromDescriptor(DATA, 2), {
    base: 0n, limit: 0xffff_ffff, selector: 0x10, type: 0x3, present: 1, dpl: 0,
    db: 1, s: 1, l: 0, g: 1, avl: 0, unusable: 0,
  });
});

test('64-bit TSS fields', () => {
  assert.equal(segmentFromDescriptor(TSS64, 3), {
    base: 0n, limit: 0xffff_ffff, selector: 0x18, type: 0xb, present: 1, dpl: 0,
    db: 0, s: 0, l: 0, g: 0x1, avl: 0, unusable: 0,
  });
});

test('byte-granular 32-bit TSS keeps its limit unscaled', () => {
  assert.equal(segmentFromDescriptor(PVH_TSS32, 3), {
    base: 0n, limit: 0x67, selector: 0x18, type: 0xb, present: 1, dpl: 0,
    db: 0, s: 0, l: 0, g: 0, avl: 0, unusable: 0,
  });
});

test('base, limit, DPL and AVL read back from an arbitrary descriptor', () => {
  // flags 0x10f3: AVL=1, P=1, DPL=3, S=1, type 3; byte granular.
  assert.equal(segmentFromDescriptor(gdtEntry(0x10f3, 0x1234_5678, 0xabcde), 5), {
    base: 0x1234_5678n, limit: 0xabcde, selector: 0x28, type: 0x3, present: 1, dpl: 3,
    db: 0, s: 1, l: 0, g: 0, avl: 1, unusable: 0,
  });
});

test('the null descriptor is an unusable segment', () => {
  const segment = segmentFromDescriptor(0n, 0);
  assert.is(segment.present, 0);
  assert.is(segment.unusable, 1);
  assert.is(segment.selector, 0);
});

test('writeBootGdt and writeBootIdt write at 0x500 and 0x520 and return GDTR/IDTR', () => {
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 0x10000 }]);
  mem.fill(0, 0x10000, 0xee);
  assert.equal(writeBootGdt(mem), { base: 0x500n, limit: 31 });
  assert.is(mem.readU64(0x500), 0n);
  assert.is(mem.readU64(0x508), CODE64);
  assert.is(mem.readU64(0x510), DATA);
  assert.is(mem.readU64(0x518), TSS64);
  assert.equal(writeBootIdt(mem), { base: 0x520n, limit: 7 });
  assert.is(mem.readU64(0x520), 0n);
  assert.is(mem.readU8(0x528), 0xee, 'nothing written past the IDT');
});

test('writeBootGdt writes the PVH table when asked', () => {
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 0x1000 }]);
  writeBootGdt(mem, PVH_GDT);
  assert.is(mem.readU64(0x508), PVH_CODE32);
  assert.is(mem.readU64(0x518), PVH_TSS32);
});

test('memory too small for the tables is a GdtError', () => {
  const justShort = GuestMemory.allocate([{ guestAddress: 0, size: 0x51f }]);
  assert.throws(() => writeBootGdt(justShort), (e: unknown) => e instanceof GdtError && /boot GDT/.test(e.message));
  const exact = GuestMemory.allocate([{ guestAddress: 0, size: 0x520 }]);
  writeBootGdt(exact);
  assert.throws(() => writeBootIdt(exact), (e: unknown) => e instanceof GdtError && /boot IDT/.test(e.message));
});

test.run();

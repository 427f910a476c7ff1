import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { CMDLINE_START } from '../../../../src/main/layout';
import { PVH_MAX_MEMMAP_ENTRIES, PVH_MEMMAP_RAM, PVH_MEMMAP_RESERVED, PvhError, writePvhStartInfo } from '../../../../src/main/arch/pvh';

// Expected bytes are worked out by hand from Xen's start_info.h:
// hvm_start_info is u32 magic, version, flags, nr_modules; u64 modlist_paddr,
// cmdline_paddr, rsdp_paddr, memmap_paddr; u32 memmap_entries, reserved (56 bytes).
// hvm_modlist_entry is u64 paddr, size, cmdline_paddr, reserved (32 bytes).
// hvm_memmap_table_entry is u64 addr, size; u32 type, reserved (24 bytes).

const MIB = 1024 * 1024;

function memory(): GuestMemory {
  return GuestMemory.allocate([
    { guestAddress: 0, size: 128 * MIB },
    { guestAddress: 0x1_0000_0000, size: 0x1000 },
  ]);
}

const MAP = [
  { addr: 0, size: 0x9fc00, type: PVH_MEMMAP_RAM },
  { addr: 0x9fc00, size: 0x60400, type: PVH_MEMMAP_RESERVED },
  { addr: 0x100000, size: 0x7f00000, type: PVH_MEMMAP_RAM },
  { addr: 0x1_0000_0000, size: 0x4000_0000, type: PVH_MEMMAP_RAM },
];

test('memory map types use E820 numbering', () => {
  assert.is(PVH_MEMMAP_RAM, 1);
  assert.is(PVH_MEMMAP_RESERVED, 2);
});

test('hvm_start_info without modules: exact bytes at 0x6000', () => {
  const mem = memory();
  const address = writePvhStartInfo(mem, { cmdlineAddress: CMDLINE_START, memoryMap: MAP });
  assert.is(address, 0x6000);
  assert.equal(Array.from(mem.read(0x6000, 56)), [
    0x78, 0xc5, 0x6e, 0x33, // magic 0x336ec578
    0x01, 0x00, 0x00, 0x00, // version 1
    0x00, 0x00, 0x00, 0x00, // flags
    0x00, 0x00, 0x00, 0x00, // nr_modules 0
    0, 0, 0, 0, 0, 0, 0, 0, // modlist_paddr: none
    0x00, 0x00, 0x02, 0x00, 0, 0, 0, 0, // cmdline_paddr 0x20000
    0, 0, 0, 0, 0, 0, 0, 0, // rsdp_paddr: no ACPI
    0x00, 0x61, 0x00, 0x00, 0, 0, 0, 0, // memmap_paddr 0x6100
    0x04, 0x00, 0x00, 0x00, // memmap_entries 4
    0x00, 0x00, 0x00, 0x00, // reserved
  ]);
  // Nothing is written to the module list.
  assert.ok(mem.read(0x6040, 32).every((byte) => byte === 0));
});

test('memory map entries: exact bytes at 0x6100, 24 bytes apart', () => {
  const mem = memory();
  writePvhStartInfo(mem, { cmdlineAddress: CMDLINE_START, memoryMap: MAP });
  assert.equal(Array.from(mem.read(0x6100, 24)), [0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0xfc, 0x09, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(Array.from(mem.read(0x6118, 24)), [0x00, 0xfc, 0x09, 0, 0, 0, 0, 0, 0x00, 0x04, 0x06, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(Array.from(mem.read(0x6130, 24)), [0x00, 0x00, 0x10, 0, 0, 0, 0, 0, 0x00, 0x00, 0xf0, 0x07, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
  // an entry above 4 GiB keeps its upper address bits
  assert.equal(Array.from(mem.read(0x6148, 24)), [0, 0, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
  assert.ok(mem.read(0x6160, 24).every((byte) => byte === 0));
});

test('an initrd becomes the one module at 0x6040', () => {
  const mem = memory();
  writePvhStartInfo(mem, { cmdlineAddress: CMDLINE_START, memoryMap: MAP, initrd: { address: 0x7000000, size: 0x123456 } });
  assert.equal(Array.from(mem.read(0x6000 + 12, 12)), [0x01, 0, 0, 0, 0x40, 0x60, 0, 0, 0, 0, 0, 0]);
  assert.equal(Array.from(mem.read(0x6040, 32)), [
    0x00, 0x00, 0x00, 0x07, 0, 0, 0, 0, // paddr 0x7000000
    0x56, 0x34, 0x12, 0x00, 0, 0, 0, 0, // size 0x123456
    0, 0, 0, 0, 0, 0, 0, 0, // cmdline_paddr: none
    0, 0, 0, 0, 0, 0, 0, 0, // reserved
  ]);
});

test('stale bytes in the PVH area are cleared', () => {
  const mem = memory();
  mem.fill(0x6000, 0x1100, 0xaa);
  writePvhStartInfo(mem, { cmdlineAddress: CMDLINE_START, memoryMap: MAP.slice(0, 1) });
  assert.ok(mem.read(0x6038, 0x6100 - 0x6038).every((byte) => byte === 0));
  assert.ok(mem.read(0x6118, 0x7000 - 0x6118).every((byte) => byte === 0));
  assert.is(mem.readU8(0x7000), 0xaa, 'the zero page after the PVH area is not touched');
});

test('the memory map holds 160 entries and refuses the 161st', () => {
  assert.is(PVH_MAX_MEMMAP_ENTRIES, 160); // (0x7000 - 0x6100) / 24
  const entries = Array.from({ length: 160 }, (_, i) => ({ addr: i * 0x1000, size: 0x1000, type: PVH_MEMMAP_RAM }));
  const mem = memory();
  writePvhStartInfo(mem, { cmdlineAddress: CMDLINE_START, memoryMap: entries });
  assert.is(mem.readU64(0x6100 + 159 * 24), BigInt(159 * 0x1000));
  assert.throws(
    () => writePvhStartInfo(memory(), { cmdlineAddress: CMDLINE_START, memoryMap: [...entries, { addr: 0xa0000, size: 1, type: 1 }] }),
    (error: unknown) => error instanceof PvhError && /161 entries but only 160/.test((error as Error).message),
  );
});

test('bad input is refused with PvhError', () => {
  const cases: Array<Parameters<typeof writePvhStartInfo>[1]> = [
    { cmdlineAddress: CMDLINE_START, memoryMap: [] },
    { cmdlineAddress: CMDLINE_START, memoryMap: [{ addr: 0, size: 0x1000, type: 0 }] },
    { cmdlineAddress: CMDLINE_START, memoryMap: [{ addr: 0, size: 0, type: 1 }] },
    { cmdlineAddress: 0x2_0000_0000, memoryMap: MAP },
    { cmdlineAddress: CMDLINE_START, memoryMap: MAP, initrd: { address: 0x7f00000, size: 0x200000 } },
  ];
  for (const options of cases) {
    assert.throws(() => writePvhStartInfo(memory(), options), (error: unknown) => error instanceof PvhError);
  }
  const tiny = GuestMemory.allocate([{ guestAddress: 0, size: 0x6800 }]);
  assert.throws(() => writePvhStartInfo(tiny, { cmdlineAddress: 0x100, memoryMap: MAP }), (error: unknown) => error instanceof PvhError);
});

test.run();

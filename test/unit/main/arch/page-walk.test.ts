import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readVirtual, translate } from '../../../../src/main/arch/page-walk';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';

const MIB = 1024 * 1024;
const CR0_PE_PG = 0x8000_0001n;
const CR4_PAE = 0x20n;
const EFER_LME_LMA = 0x500n;

function longModeMemory(): GuestMemory {
  const memory = GuestMemory.allocate([{ guestAddress: 0, size: 8 * MIB }]);
  // PML4 at 0x1000 -> PDPT at 0x2000 -> PD at 0x3000 -> PT at 0x4000.
  memory.writeU64(0x1000 + 511 * 8, 0x2003n); // 0xffff_ff80_0000_0000 region
  memory.writeU64(0x1000, 0x2003n);
  memory.writeU64(0x2000, 0x3003n);
  memory.writeU64(0x3000 + 1 * 8, 0x200083n); // 2 MiB page: virtual 2 MiB -> physical 2 MiB
  memory.writeU64(0x3000 + 2 * 8, 0x4003n); // virtual 4 MiB.. through a 4 KiB table
  memory.writeU64(0x4000 + 3 * 8, 0x6_0003n); // virtual 4 MiB + 3 pages -> physical 0x60000
  return memory;
}

const longMode = { cr0: CR0_PE_PG, cr3: 0x1000n, cr4: CR4_PAE, efer: EFER_LME_LMA };

test('paging off: the address is physical', () => {
  const memory = GuestMemory.allocate([{ guestAddress: 0, size: MIB }]);
  assert.is(translate(memory, { cr0: 1n, cr3: 0n, cr4: 0n, efer: 0n }, 0x1234n), 0x1234);
});

test('long mode: 2 MiB and 4 KiB pages, and unmapped addresses', () => {
  const memory = longModeMemory();
  assert.is(translate(memory, longMode, 0x20_0123n), 0x20_0123);
  assert.is(translate(memory, longMode, 0x40_3abcn), 0x6_0abc);
  assert.is(translate(memory, longMode, 0x40_4000n), undefined, 'PT entry 4 not present');
  assert.is(translate(memory, longMode, 0x60_0000n), undefined, 'PD entry 3 not present');
  assert.is(translate(memory, longMode, 0xffff_ff80_0020_0010n), 0x20_0010, 'upper half through PML4 entry 511');
});

test('readVirtual stops at the first unmapped byte', () => {
  const memory = longModeMemory();
  memory.write(0x6_0ffe, Uint8Array.of(0xaa, 0xbb));
  assert.equal(readVirtual(memory, longMode, 0x40_3ffen, 15), [0xaa, 0xbb]);
});

test('32-bit paging with 4 MiB pages (PSE)', () => {
  const memory = GuestMemory.allocate([{ guestAddress: 0, size: 16 * MIB }]);
  memory.writeU32(0x1000 + 2 * 4, 0x80_0083); // virtual 8 MiB -> physical 8 MiB (4 MiB page)
  const paging = { cr0: CR0_PE_PG, cr3: 0x1000n, cr4: 0x10n, efer: 0n };
  assert.is(translate(memory, paging, 0x80_1234n), 0x80_1234);
  assert.is(translate(memory, paging, 0x40_0000n), undefined);
});

test.run();

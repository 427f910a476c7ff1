import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { PagingError, writeIdentityPageTables } from '../../../../src/main/arch/paging';

test('identity tables: PML4 -> PDPT -> 512 2 MiB pages, CR3 = PML4', () => {
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 0x10000 }]);
  mem.fill(0, 0x10000, 0xff); // stale bytes must not survive as present entries
  assert.is(writeIdentityPageTables(mem), 0x9000n);
  assert.is(mem.readU64(0x9000), 0xa003n, 'PML4[0] -> PDPT, present|writable');
  assert.is(mem.readU64(0xa000), 0xb003n, 'PDPT[0] -> page directory, present|writable');
  for (let i = 1; i < 512; i++) {
    assert.is(mem.readU64(0x9000 + i * 8), 0n, `PML4[${i}] not present`);
    assert.is(mem.readU64(0xa000 + i * 8), 0n, `PDPT[${i}] not present`);
  }
  assert.is(mem.readU64(0xb000), 0x83n, 'PD[0] maps 0..2 MiB');
  assert.is(mem.readU64(0xb008), 0x20_0083n, 'PD[1] maps 2..4 MiB');
  assert.is(mem.readU64(0xb000 + 511 * 8), 0x3fe0_0083n, 'PD[511] maps the last 2 MiB below 1 GiB');
  for (let i = 0; i < 512; i++) {
    assert.is(mem.readU64(0xb000 + i * 8), BigInt(i) * 0x20_0000n + 0x83n);
  }
});

test('each table that does not fit in RAM is a PagingError', () => {
  for (const [size, name] of [[0x9000, 'PML4'], [0xa000, 'PDPT'], [0xbfff, 'page directory']] as const) {
    const mem = GuestMemory.allocate([{ guestAddress: 0, size }]);
    assert.throws(() => writeIdentityPageTables(mem), (e: unknown) => e instanceof PagingError && e.message.includes(name), name);
  }
});

test.run();

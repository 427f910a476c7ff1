import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AddressClaims, ClaimTable, ClaimedRange, MAX_MMIO_CLAIMS } from '../../../src/shared/address-claims';

function claimsOf(ranges: { ports: ClaimedRange[]; mmio: ClaimedRange[] }): AddressClaims {
  const table = new ClaimTable();
  table.publish(ranges.ports, ranges.mmio);
  return new AddressClaims(table.buffer);
}

test('ports: exactly the claimed ranges, edges included', () => {
  const claims = claimsOf({ ports: [{ base: 0x3f8, length: 8 }, { base: 0x70, length: 2 }, { base: 0xffff, length: 1 }], mmio: [] });
  assert.is(claims.portClaimed(0x3f7), false);
  assert.is(claims.portClaimed(0x3f8), true);
  assert.is(claims.portClaimed(0x3ff), true);
  assert.is(claims.portClaimed(0x400), false);
  assert.is(claims.portClaimed(0x71), true);
  assert.is(claims.portClaimed(0x72), false);
  assert.is(claims.portClaimed(0xffff), true);
  assert.is(claims.portClaimed(0), false);
});

test('mmio: binary search over unsorted input ranges', () => {
  const claims = claimsOf({
    ports: [],
    mmio: [{ base: 0xfec00000, length: 0x1000 }, { base: 0xd0000000, length: 64 }, { base: 0x1_0000_0000, length: 0x1000 }],
  });
  assert.is(claims.mmioClaimed(0xcfffffff), false);
  assert.is(claims.mmioClaimed(0xd0000000), true);
  assert.is(claims.mmioClaimed(0xd000003f), true);
  assert.is(claims.mmioClaimed(0xd0000040), false);
  assert.is(claims.mmioClaimed(0xfec00fff), true);
  assert.is(claims.mmioClaimed(0xfec01000), false);
  assert.is(claims.mmioClaimed(0x1_0000_0800), true);
  assert.is(claims.mmioClaimed(0), false);
});

test('no claims: nothing is claimed', () => {
  const claims = claimsOf({ ports: [], mmio: [] });
  assert.is(claims.portClaimed(0x3f8), false);
  assert.is(claims.mmioClaimed(0xd0000000), false);
});

test('a republished table reaches a reader that already looked: moved ranges follow, others stay', () => {
  const table = new ClaimTable();
  table.publish([{ base: 0x3f8, length: 8 }], [{ base: 0xd0000000, length: 0x1000 }]);
  const claims = new AddressClaims(table.buffer);
  assert.is(claims.mmioClaimed(0xd0000010), true);
  assert.is(claims.portClaimed(0xc000), false);
  // A BAR moved from 0xd0000000 to 0xe0000000, an I/O BAR appeared at 0xc000.
  table.publish([{ base: 0x3f8, length: 8 }, { base: 0xc000, length: 0x40 }], [{ base: 0xe0000000, length: 0x1000 }]);
  assert.is(claims.mmioClaimed(0xd0000010), false);
  assert.is(claims.mmioClaimed(0xe0000fff), true);
  assert.is(claims.portClaimed(0xc03f), true);
  assert.is(claims.portClaimed(0x3f8), true);
});

test('a port that stays claimed is never cleared while the table is rewritten', () => {
  const table = new ClaimTable();
  table.publish([{ base: 0x3f8, length: 8 }], []);
  const bitmap = new Uint8Array(table.buffer);
  const before = bitmap.slice();
  table.publish([{ base: 0x3f8, length: 8 }, { base: 0x2f8, length: 8 }], []);
  // Only the bytes of 0x2f8-0x2ff changed; the byte holding 0x3f8-0x3ff is untouched (the same value throughout).
  const changed = [...bitmap].map((value, i) => (value !== before[i] ? i : -1)).filter((i) => i >= 0);
  assert.ok(changed.length >= 1, 'the new range is written');
  assert.ok(new AddressClaims(table.buffer).portClaimed(0x3f8));
});

test('the table refuses more MMIO ranges than it holds', () => {
  const many = Array.from({ length: MAX_MMIO_CLAIMS + 1 }, (_, i) => ({ base: 0xd0000000 + i * 0x1000, length: 0x1000 }));
  assert.throws(() => new ClaimTable().publish([], many), /MMIO ranges/);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AddressClaims } from '../../../src/shared/address-claims';

test('ports: exactly the claimed ranges, edges included', () => {
  const claims = new AddressClaims({ ports: [{ base: 0x3f8, length: 8 }, { base: 0x70, length: 2 }, { base: 0xffff, length: 1 }], mmio: [] });
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
  const claims = new AddressClaims({
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
  const claims = new AddressClaims({ ports: [], mmio: [] });
  assert.is(claims.portClaimed(0x3f8), false);
  assert.is(claims.mmioClaimed(0xd0000000), false);
});

test.run();

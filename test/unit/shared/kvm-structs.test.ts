// The struct encoders of kvm-structs.ts that snapshots use, on synthetic
// buffers laid out by the offsets in kvm-abi.ts (which kvm-abi.test.ts checks
// against <linux/kvm.h>).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CLOCK_DATA, MSR_ENTRY, MSR_LIST, SIZEOF } from '../../../src/shared/kvm-abi';
import { decodeClockData, decodeMsrList, decodeMsrs, encodeClockData, encodeMsrs, msrListBuffer } from '../../../src/shared/kvm-structs';

test('encodeMsrs then decodeMsrs gives the entries back, 64-bit values whole', () => {
  const entries = [{ index: 0x10, data: 0xffff_ffff_ffff_fffen }, { index: 0xc000_0080, data: 0x500n }];
  const bytes = encodeMsrs(entries);
  assert.is(bytes.length, SIZEOF.kvm_msrs + 2 * SIZEOF.kvm_msr_entry);
  const dv = new DataView(bytes.buffer);
  assert.is(dv.getUint32(SIZEOF.kvm_msrs + SIZEOF.kvm_msr_entry + MSR_ENTRY.index, true), 0xc000_0080);
  assert.equal(decodeMsrs(bytes), entries);
});

test('decodeMsrs with a count reads only the entries KVM filled in', () => {
  const bytes = encodeMsrs([{ index: 1, data: 1n }, { index: 2, data: 2n }, { index: 3, data: 3n }]);
  assert.equal(decodeMsrs(bytes, 2), [{ index: 1, data: 1n }, { index: 2, data: 2n }]);
  assert.equal(decodeMsrs(bytes, 0), []);
});

test('an MSR list buffer has room for its capacity and decodes what KVM wrote', () => {
  const bytes = msrListBuffer(8);
  assert.is(bytes.length, SIZEOF.kvm_msr_list + 8 * 4);
  const dv = new DataView(bytes.buffer);
  assert.is(dv.getUint32(MSR_LIST.nmsrs, true), 8);
  dv.setUint32(MSR_LIST.nmsrs, 3, true);
  [0x10, 0x174, 0xc000_0102].forEach((index, i) => dv.setUint32(MSR_LIST.indices + 4 * i, index, true));
  assert.equal(decodeMsrList(bytes), [0x10, 0x174, 0xc000_0102]);
});

test('clock data round-trips the clock and flags and leaves the rest zero', () => {
  const bytes = encodeClockData({ clock: 123_456_789_012_345n, flags: 6 });
  assert.is(bytes.length, SIZEOF.kvm_clock_data);
  assert.is(new DataView(bytes.buffer).getUint32(CLOCK_DATA.flags, true), 6);
  assert.ok(bytes.subarray(CLOCK_DATA.flags + 4).every((byte) => byte === 0));
  assert.equal(decodeClockData(bytes), { clock: 123_456_789_012_345n, flags: 6 });
});

test.run();

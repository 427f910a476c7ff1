// KvmRunView decodes the exit fields of struct kvm_run at the offsets in
// kvm-abi.ts; the 64-bit ones without BigInt, which must still be exact for
// guest addresses above 4 GiB.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXIT, KVM_RUN } from '../../../src/shared/kvm-abi';
import { ACCESS_KIND, KvmRunView, decodeAccess, decodeAccessData, emptyAccess } from '../../../src/shared/kvm-run';

function page(): { view: KvmRunView; data: DataView } {
  const buffer = new ArrayBuffer(2 * 4096);
  return { view: new KvmRunView(buffer), data: new DataView(buffer) };
}

test('an I/O exit: port, direction, size, count and the data area', () => {
  const { view, data } = page();
  data.setUint32(KVM_RUN.exit_reason, EXIT.IO, true);
  data.setUint8(KVM_RUN.io_direction, 1);
  data.setUint8(KVM_RUN.io_size, 2);
  data.setUint16(KVM_RUN.io_port, 0x3f8, true);
  data.setUint32(KVM_RUN.io_count, 3, true);
  data.setBigUint64(KVM_RUN.io_data_offset, 4096n, true);
  assert.is(view.exitReason, EXIT.IO);
  const access = emptyAccess();
  decodeAccess(view.bytes, view.data, access);
  decodeAccessData(view.bytes, view.data, access);
  assert.equal(access, { kind: ACCESS_KIND.ioWrite, address: 0x3f8, size: 2, count: 3, dataOffset: 4096 });
  // The device thread reads each element of a port access through bytesAt.
  const element = view.bytesAt(access.dataOffset + access.size, access.size);
  assert.is(element.byteOffset, 4098);
  assert.is(element.length, 2, 'one element of size bytes');
  assert.is(view.bytesAt(4098, 2), element, 'the same view comes back for the same access');
});

test('an MMIO exit: 64-bit addresses are exact above 4 GiB', () => {
  const { view, data } = page();
  data.setUint32(KVM_RUN.exit_reason, EXIT.MMIO, true);
  data.setUint32(KVM_RUN.mmio_len, 4, true);
  data.setUint8(KVM_RUN.mmio_is_write, 0);
  const access = emptyAccess();
  for (const address of [0xd000_0000n, 0xfee0_0000n, 0x1_0000_1000n, 0xff_ffff_f000n]) {
    data.setBigUint64(KVM_RUN.mmio_phys_addr, address, true);
    decodeAccess(view.bytes, view.data, access);
    assert.is(access.address, Number(address));
  }
  assert.is(access.kind, ACCESS_KIND.mmioRead);
  decodeAccessData(view.bytes, view.data, access);
  const bytes = view.bytesAt(access.dataOffset, access.size);
  assert.is(bytes.byteOffset, KVM_RUN.mmio_data);
  assert.is(bytes.length, 4);
});

test('decodeAccess: port I/O (string I/O keeps its count and data offset)', () => {
  const { view, data } = page();
  data.setUint32(KVM_RUN.exit_reason, EXIT.IO, true);
  data.setUint8(KVM_RUN.io_direction, 0);
  data.setUint8(KVM_RUN.io_size, 2);
  data.setUint16(KVM_RUN.io_port, 0x510, true);
  data.setUint32(KVM_RUN.io_count, 8, true);
  data.setBigUint64(KVM_RUN.io_data_offset, 4096n, true);
  const access = emptyAccess();
  decodeAccess(view.bytes, view.data, access);
  assert.equal(access, { kind: ACCESS_KIND.ioRead, address: 0x510, size: 0, count: 0, dataOffset: 0 }, 'kind and address first');
  decodeAccessData(view.bytes, view.data, access);
  assert.equal(access, { kind: ACCESS_KIND.ioRead, address: 0x510, size: 2, count: 8, dataOffset: 4096 });
  data.setUint8(KVM_RUN.io_direction, 1);
  decodeAccess(view.bytes, view.data, access);
  assert.is(access.kind, ACCESS_KIND.ioWrite);
});

test('decodeAccess: MMIO reads and writes, addresses above 4 GiB exact', () => {
  const { view, data } = page();
  data.setUint32(KVM_RUN.exit_reason, EXIT.MMIO, true);
  data.setBigUint64(KVM_RUN.mmio_phys_addr, 0xff_ffff_f004n, true);
  data.setUint32(KVM_RUN.mmio_len, 4, true);
  data.setUint8(KVM_RUN.mmio_is_write, 1);
  const access = emptyAccess();
  decodeAccess(view.bytes, view.data, access);
  decodeAccessData(view.bytes, view.data, access);
  assert.equal(access, { kind: ACCESS_KIND.mmioWrite, address: 0xff_ffff_f004, size: 4, count: 1, dataOffset: KVM_RUN.mmio_data });
  data.setUint8(KVM_RUN.mmio_is_write, 0);
  decodeAccess(view.bytes, view.data, access);
  assert.is(access.kind, ACCESS_KIND.mmioRead);
});

test('decodeAccess: an IOAPIC EOI carries its vector; any other exit is no access', () => {
  const { view, data } = page();
  data.setUint32(KVM_RUN.exit_reason, EXIT.IOAPIC_EOI, true);
  data.setUint8(KVM_RUN.eoi_vector, 0x31);
  const access = emptyAccess();
  decodeAccess(view.bytes, view.data, access);
  assert.is(access.kind, ACCESS_KIND.eoi);
  assert.is(access.address, 0x31);
  for (const reason of [EXIT.HLT, EXIT.SHUTDOWN, EXIT.INTERNAL_ERROR, EXIT.SYSTEM_EVENT]) {
    data.setUint32(KVM_RUN.exit_reason, reason, true);
    decodeAccess(view.bytes, view.data, access);
    assert.is(access.kind, ACCESS_KIND.none, `exit ${reason}`);
  }
});

test.run();

// GuestRam's segmented range on the real /dev/kvm (what a firmware boot's PAM
// registers drive): a raw VM with RAM from 0 to 1 MiB, 0xc0000-0xfffff in
// 16 KiB KVM slots of their own. A real-mode program writes a byte into one
// segment: while it is read-only the write exits as KVM_EXIT_MMIO and the RAM
// keeps its byte; made writable again, the same write lands without an exit.
// Reads always see the RAM (the firmware's copy).

import { test } from 'uvu';
import { rawVm as rawKvmVm } from '../support/raw-vm';
import * as assert from 'uvu/assert';
import { Kvm } from '../../src/main/kvm/kvm';
import { EXIT, IOCTL, KVM_RUN, exitReasonName } from '../../src/shared/kvm-abi';
import { check, native } from '../../src/shared/native';

const CODE = 0x1000;
const RAM_BYTES = 0x10_0000;
const SEGMENT = 0xe_4000;
/* mov ax, 0xe400 ; mov ds, ax ; mov al, [0] ; out 0x80, al ; mov byte [0], 0x5a ; out 0x81, al ; jmp short -> start (loops) */
const PROGRAM = [0xb8, 0x00, 0xe4, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xe6, 0x80, 0xc6, 0x06, 0x00, 0x00, 0x5a, 0xe6, 0x81, 0xeb, 0xed];

test('a read-only segment drops guest writes (an MMIO exit) and reads RAM; writable again, the write lands', () => {
  const kvm = Kvm.open(process.env.TSVMM_KVM_DEVICE ?? '/dev/kvm');
  const raw = rawKvmVm(kvm, { ramBytes: RAM_BYTES, segmented: { guestAddress: 0xc_0000, size: 0x4_0000, granularity: 0x4000 } });
  const { ram, vcpu, run } = raw;
  raw.startRealMode(PROGRAM, CODE);
  const bytes = ram.memory.regions[0].bytes;
  bytes[SEGMENT] = 0xa5; // what the firmware copied there
  const step = () => {
    check('KVM_RUN', native().run(vcpu.fd, IOCTL.KVM_RUN));
    const reason = run.getUint32(KVM_RUN.exit_reason, true);
    if (reason === EXIT.IO) return `IO 0x${run.getUint16(KVM_RUN.io_port, true).toString(16)} ${run.getUint8(Number(run.getBigUint64(KVM_RUN.io_data_offset, true))).toString(16)}`;
    if (reason === EXIT.MMIO) return `MMIO ${run.getUint8(KVM_RUN.mmio_is_write) ? 'write' : 'read'} 0x${Number(run.getBigUint64(KVM_RUN.mmio_phys_addr, true)).toString(16)} ${run.getUint8(KVM_RUN.mmio_data).toString(16)}`;
    return exitReasonName(reason);
  };
  try {
    assert.is(ram.nextFreeSlot, 1 + 16, 'below 0xc0000, then sixteen 16 KiB slots');
    ram.setReadOnly(SEGMENT, 0x4000, true);
    assert.equal([step(), step(), step()], ['IO 0x80 a5', 'MMIO write 0xe4000 5a', 'IO 0x81 a5']);
    assert.is(bytes[SEGMENT], 0xa5, 'the dropped write left RAM alone');
    ram.setReadOnly(SEGMENT, 0x4000, false);
    assert.equal([step(), step()], ['IO 0x80 a5', 'IO 0x81 a5']);
    assert.is(bytes[SEGMENT], 0x5a, 'the write landed without an exit');
    assert.equal(step(), 'IO 0x80 5a');
    assert.throws(() => ram.setReadOnly(0x8_0000, 0x4000, true), /no KVM slot of its own lies there/);
  } finally {
    raw.close();
    kvm.close();
  }
});

test.run();

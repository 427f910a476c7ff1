// KVM_IOEVENTFD on the real /dev/kvm (Vm.registerIoeventfd/unregisterIoeventfd):
// a raw VM with one vCPU runs a hand-assembled 16-bit real-mode program that
// writes to ioeventfd-registered ports and MMIO addresses. Registered writes
// must only count on their eventfd, with no exit to userspace; writes that
// miss a datamatch, and writes after the registration is undone, exit as
// ordinary KVM_EXIT_IO / KVM_EXIT_MMIO. Then the same eventfds through an
// EventWatcher while the vCPU runs, the way a virtio device will see them.

import { test } from 'uvu';
import { rawVm as rawKvmVm } from '../support/raw-vm';
import * as assert from 'uvu/assert';
import { EventWatcher } from '../../src/main/kvm/event-watcher';
import { Ioeventfd, Kvm } from '../../src/main/kvm/kvm';
import { CAP, EFD_NONBLOCK, EXIT, IOCTL, KVM_RUN, exitReasonName } from '../../src/shared/kvm-abi';
import { KvmError, check, native } from '../../src/shared/native';

const CODE = 0x1000;
const RAM_BYTES = 0x10000; // 64 KiB at 0; MMIO at 0x20000 is outside every slot
const EAGAIN = 11;

/* The program (16-bit real mode, CS = DS = 0 until DS is set):
 *   mov dx, 0x510 ; mov al, 1 ; out dx, al x3            port 0x510, no datamatch: 3 counts
 *   mov dx, 0x512 ; mov al, 7 ; out ; mov al, 5 ; out     port 0x512, datamatch 7: count, EXIT (5)
 *   mov al, 7 ; out                                       count
 *   mov ax, 0x2000 ; mov ds, ax
 *   mov byte [0], 0xaa x4                                 MMIO 0x20000, length 1: 4 counts
 *   mov dword [0x10], 0x12345678                          MMIO 0x20010, length 4, datamatch: count
 *   mov dword [0x10], 0x11111111                          EXIT (datamatch miss)
 *   mov dx, 0x5ff ; out dx, al                            EXIT: the marker, unregistered port
 *   mov dx, 0x510 ; out dx, al                            EXIT once 0x510 is unregistered
 *   hlt                                                   EXIT
 */
const PROGRAM = [
  0xba, 0x10, 0x05, 0xb0, 0x01, 0xee, 0xee, 0xee,
  0xba, 0x12, 0x05, 0xb0, 0x07, 0xee, 0xb0, 0x05, 0xee,
  0xb0, 0x07, 0xee,
  0xb8, 0x00, 0x20, 0x8e, 0xd8,
  ...Array.from({ length: 4 }, () => [0xc6, 0x06, 0x00, 0x00, 0xaa]).flat(),
  0x66, 0xc7, 0x06, 0x10, 0x00, 0x78, 0x56, 0x34, 0x12,
  0x66, 0xc7, 0x06, 0x10, 0x00, 0x11, 0x11, 0x11, 0x11,
  0xba, 0xff, 0x05, 0xee,
  0xba, 0x10, 0x05, 0xee,
  0xf4,
];

interface Exit {
  reason: string;
  port?: number;
  address?: number;
  value: number;
}

/** A raw VM: RAM at 0 with the program, one vCPU in real mode at CS:IP 0:0x1000. */
function rawVm() {
  const kvm = Kvm.open(process.env.TSVMM_KVM_DEVICE ?? '/dev/kvm');
  const raw = rawKvmVm(kvm, { ramBytes: RAM_BYTES });
  raw.startRealMode(PROGRAM, CODE);
  const { vm, vcpu, run } = raw;
  return {
    kvm, vm, vcpu,
    /** KVM_RUN once; the exit it returned with. */
    step(): Exit {
      check('KVM_RUN', native().run(vcpu.fd, IOCTL.KVM_RUN));
      const reason = run.getUint32(KVM_RUN.exit_reason, true);
      if (reason === EXIT.IO) {
        const at = Number(run.getBigUint64(KVM_RUN.io_data_offset, true));
        return { reason: 'IO', port: run.getUint16(KVM_RUN.io_port, true), value: run.getUint8(at) };
      }
      if (reason === EXIT.MMIO) {
        const len = run.getUint32(KVM_RUN.mmio_len, true);
        const value = len === 4 ? run.getUint32(KVM_RUN.mmio_data, true) : run.getUint8(KVM_RUN.mmio_data);
        return { reason: 'MMIO', address: Number(run.getBigUint64(KVM_RUN.mmio_phys_addr, true)), value };
      }
      return { reason: exitReasonName(reason).replace('KVM_EXIT_', ''), value: 0 };
    },
    close() {
      raw.close();
      kvm.close();
    },
  };
}

function eventfd(): number {
  return check('eventfd', native().eventfd(0, EFD_NONBLOCK));
}
function count(fd: number): bigint {
  const value = native().eventfdRead(fd);
  if (typeof value === 'bigint') return value;
  if (-value === EAGAIN) return 0n;
  throw new KvmError('eventfd read', -value);
}

const notFinal = (exit: Exit) => exit.reason !== 'HLT' && exit.reason !== 'SHUTDOWN' && exit.reason !== 'INTERNAL_ERROR' && exit.reason !== 'FAIL_ENTRY';

test('KVM_CAP_IOEVENTFD is reported', () => {
  const kvm = Kvm.open();
  assert.ok(kvm.checkExtension(CAP.KVM_CAP_IOEVENTFD) > 0);
  console.log(`KVM_CAP_IOEVENTFD ${kvm.checkExtension(CAP.KVM_CAP_IOEVENTFD)}, KVM_CAP_IOEVENTFD_ANY_LENGTH ${kvm.checkExtension(CAP.KVM_CAP_IOEVENTFD_ANY_LENGTH)}`);
  kvm.close();
});

test('registered port and MMIO writes count on their eventfd without an exit; datamatch filters; unregister restores the exit', () => {
  const machine = rawVm();
  const fds = { port510: eventfd(), port512: eventfd(), mmioByte: eventfd(), mmioDword: eventfd() };
  const port510: Ioeventfd = { fd: fds.port510, address: 0x510, length: 1, pio: true };
  try {
    machine.vm.registerIoeventfd(port510);
    machine.vm.registerIoeventfd({ fd: fds.port512, address: 0x512, length: 1, pio: true, datamatch: 7 });
    machine.vm.registerIoeventfd({ fd: fds.mmioByte, address: 0x20000, length: 1, pio: false });
    machine.vm.registerIoeventfd({ fd: fds.mmioDword, address: 0x20010, length: 4, pio: false, datamatch: 0x12345678 });

    const exits: Exit[] = [];
    do exits.push(machine.step()); while (notFinal(exits[exits.length - 1]) && !(exits[exits.length - 1].port === 0x5ff));
    assert.equal(exits, [
      { reason: 'IO', port: 0x512, value: 5 },
      { reason: 'MMIO', address: 0x20010, value: 0x11111111 },
      { reason: 'IO', port: 0x5ff, value: 0 }, // AL is 0 since mov ax, 0x2000
    ], 'only the datamatch misses and the marker left KVM_RUN');
    assert.equal(
      { port510: count(fds.port510), port512: count(fds.port512), mmioByte: count(fds.mmioByte), mmioDword: count(fds.mmioDword) },
      { port510: 3n, port512: 2n, mmioByte: 4n, mmioDword: 1n },
      'each registered write counted once',
    );

    machine.vm.unregisterIoeventfd(port510);
    const rest: Exit[] = [];
    do rest.push(machine.step()); while (notFinal(rest[rest.length - 1]));
    assert.equal(rest, [{ reason: 'IO', port: 0x510, value: 0 }, { reason: 'HLT', value: 0 }]);
    assert.is(count(fds.port510), 0n, 'an unregistered address no longer signals');
  } finally {
    machine.close();
    for (const fd of Object.values(fds)) native().close(fd);
  }
});

test('KVM refuses what it should, as KvmError naming KVM_IOEVENTFD', () => {
  const machine = rawVm();
  const fd = eventfd();
  const expectError = (what: string, call: () => void, code: string) => {
    try {
      call();
      assert.unreachable(`${what} was accepted`);
    } catch (error) {
      assert.instance(error, KvmError, what);
      assert.is((error as KvmError).operation, 'KVM_IOEVENTFD', what);
      assert.is((error as KvmError).code, code, `${what}: ${(error as Error).message}`);
    }
  };
  try {
    const registration: Ioeventfd = { fd, address: 0x600, length: 2, pio: true };
    machine.vm.registerIoeventfd(registration);
    expectError('the same registration twice', () => machine.vm.registerIoeventfd(registration), 'EEXIST');
    expectError('length 3', () => machine.vm.registerIoeventfd({ ...registration, address: 0x610, length: 3 }), 'EINVAL');
    expectError('unregistering what is not registered', () => machine.vm.unregisterIoeventfd({ ...registration, address: 0x620 }), 'ENOENT');
    expectError('a closed fd', () => machine.vm.registerIoeventfd({ ...registration, fd: 1_000_000 }), 'EBADF');
    machine.vm.unregisterIoeventfd(registration);
  } finally {
    machine.close();
    native().close(fd);
  }
});

test('an EventWatcher sees the guest\'s ioeventfd writes while the vCPU runs, with no exit for them', async () => {
  const machine = rawVm();
  const fds = [eventfd(), eventfd()];
  const reports: number[][] = [];
  const watcher = new EventWatcher((tokens) => reports.push([...tokens]));
  try {
    watcher.add(fds[0], 0x510);
    watcher.add(fds[1], 0x20000);
    machine.vm.registerIoeventfd({ fd: fds[0], address: 0x510, length: 1, pio: true });
    machine.vm.registerIoeventfd({ fd: fds[1], address: 0x20000, length: 1, pio: false });
    const first = machine.step(); // runs to the datamatch-less 0x512 write (nothing registered there now)
    assert.equal(first, { reason: 'IO', port: 0x512, value: 7 });
    for (let i = 0; i < 200 && reports.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(reports.flat(), [0x510], 'the three port writes: one report');
    let exit: Exit;
    do exit = machine.step(); while (exit.reason === 'IO' && exit.port === 0x512);
    assert.equal(exit, { reason: 'MMIO', address: 0x20010, value: 0x12345678 });
    for (let i = 0; i < 200 && reports.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(reports, [[0x510], [0x20000]]);
  } finally {
    watcher.close();
    machine.close();
    for (const fd of fds) native().close(fd);
  }
});

test.run();

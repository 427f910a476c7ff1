// Guests that talk to devices the test registers on the buses: string port
// I/O (rep outs/ins, one exit for many elements) and MMIO of every width.
// The machine runs in this process so the test owns the device objects.

import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BusDevice } from '../../src/devices/bus/bus-device';
import { Machine } from '../../src/main/vmm/machine';
import type { VmExit } from '../../src/main/vmm/vm-exit';
import { MMIO_DEVICES_START } from '../../src/main/layout';
import { guest } from '../support/tsvmm';

const TEST_PORT = 0x510;

/** Reads return 0, 1, 2, ... (one per byte); writes are recorded. */
class CountingPort implements BusDevice {
  readonly name = 'test-counter';
  next = 0;
  readonly written: number[] = [];
  read(_offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = this.next++ & 0xff;
  }
  write(_offset: number, data: Uint8Array): void {
    this.written.push(...data);
  }
}

/** A 64-byte register file: what is written at an offset reads back. */
class RegisterFile implements BusDevice {
  readonly name = 'test-registers';
  readonly bytes = new Uint8Array(64);
  readonly accesses: string[] = [];
  read(offset: number, data: Uint8Array): void {
    this.accesses.push(`r${data.length}@${offset}`);
    data.set(this.bytes.subarray(offset, offset + data.length));
  }
  write(offset: number, data: Uint8Array): void {
    this.accesses.push(`w${data.length}@${offset}`);
    this.bytes.set(data, offset);
  }
}

async function boot(name: string, devices: { io?: BusDevice; mmio?: BusDevice }): Promise<{ output: string; exit: VmExit }> {
  let output = '';
  const machine = await Machine.create({ cpus: 1, memoryMiB: 128, bootProtocol: 'linux' }, {
    kernel: new Uint8Array(fs.readFileSync(guest(name))),
    serialOutput: (bytes) => { output += Buffer.from(bytes).toString('latin1'); },
    extraDevices: [
      ...(devices.io ? [{ bus: 'io', base: TEST_PORT, length: 2, device: devices.io } as const] : []),
      ...(devices.mmio ? [{ bus: 'mmio', base: MMIO_DEVICES_START, length: 64, device: devices.mmio } as const] : []),
    ],
  });
  try {
    const exit = await machine.run();
    return { output, exit };
  } finally {
    await machine.close();
  }
}

test('stringio: rep outsb/outsw/insb/insw move whole strings through one exit each', async () => {
  const port = new CountingPort();
  const { output, exit } = await boot('stringio', { io: port });
  assert.equal(exit, { kind: 'reset', source: 'i8042' }, output);
  const insb = Array.from({ length: 16 }, (_, i) => i.toString(16).padStart(2, '0')).join(' ');
  // insw continues the counter: each word is two consecutive bytes, little endian.
  const insw = Array.from({ length: 8 }, (_, i) => {
    const low = 16 + 2 * i;
    return ((low + 1) * 256 + low).toString(16).padStart(4, '0');
  }).join(' ');
  assert.is(output, `stringio: rep outsb ok\nstringio: insb ${insb}\nstringio: insw ${insw}\n`);
  // rep outsw of 0x1234 0x5678 0x9abc 0x0000: four 2-byte elements, little endian.
  assert.equal(port.written, [0x34, 0x12, 0x78, 0x56, 0xbc, 0x9a, 0x00, 0x00]);
});

test('mmio: 1-, 2-, 4- and 8-byte accesses reach the device with their width; unclaimed reads are all ones', async () => {
  const registers = new RegisterFile();
  const { output, exit } = await boot('mmio', { mmio: registers });
  assert.equal(exit, { kind: 'reset', source: 'i8042' }, output);
  assert.is(output, 'mmio: read8 11 read16 2233 read32 44556677 read64 8899aabbccddeeff\nmmio: unclaimed ffffffff\n');
  assert.equal(registers.accesses, ['w1@0', 'w2@2', 'w4@4', 'w8@8', 'r1@0', 'r2@2', 'r4@4', 'r8@8']);
});

test('a device moved while the guest runs: the vCPU forwards its new place at once', async () => {
  // The mmio guest ends by reading 4 bytes at 0xd0100000, where nothing is.
  // When its last register write arrives, a decoy device is moved there; the
  // read must then be forwarded (the vCPU's claims followed) and answered by it.
  const UNCLAIMED = MMIO_DEVICES_START + 0x10_0000;
  const PARKED = MMIO_DEVICES_START + 0x20_0000;
  const decoy: BusDevice = { name: 'decoy', read: (_offset, data) => data.fill(0x5a), write: () => {} };
  let machine: Machine | undefined;
  const registers = new RegisterFile();
  const registersWrite = registers.write.bind(registers);
  registers.write = (offset, data) => {
    registersWrite(offset, data);
    if (data.length === 8) machine?.devices.move('decoy', UNCLAIMED);
  };
  let output = '';
  machine = await Machine.create({ cpus: 1, memoryMiB: 128, bootProtocol: 'linux' }, {
    kernel: new Uint8Array(fs.readFileSync(guest('mmio'))),
    serialOutput: (bytes) => { output += Buffer.from(bytes).toString('latin1'); },
    extraDevices: [
      { bus: 'mmio', base: MMIO_DEVICES_START, length: 64, device: registers },
      { id: 'decoy', bus: 'mmio', base: PARKED, length: 0x1000, device: decoy },
    ],
  });
  try {
    const exit = await machine.run();
    assert.equal(exit, { kind: 'reset', source: 'i8042' }, output);
    assert.is(output, 'mmio: read8 11 read16 2233 read32 44556677 read64 8899aabbccddeeff\nmmio: unclaimed 5a5a5a5a\n');
    assert.is(machine.devices.device('decoy').base, UNCLAIMED);
  } finally {
    await machine.close();
  }
});

test.run();

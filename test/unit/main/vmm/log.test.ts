// The build log: levels, the lines for the boot plan, the e820 map, PCI
// placements and device addresses (again when the guest moves one), and
// first-hit reports of unclaimed addresses from real buses.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bus } from '../../../../src/devices/bus/bus';
import type { BusDevice } from '../../../../src/devices/bus/bus-device';
import type { BootPlan } from '../../../../src/main/arch/configure';
import type { BoardDevice } from '../../../../src/main/board/board';
import { DeviceAddressLog, LogLevel, VmLog, bootLines, e820Line, forwardsEverything, logs, pciLines, reportUnclaimed } from '../../../../src/main/vmm/log';

class RecordingLog implements VmLog {
  lines: string[] = [];
  constructor(readonly level: LogLevel) {}
  write(level: LogLevel, message: string): void { this.lines.push(`${level}: ${message}`); }
}

const device = (name: string): BusDevice => ({ name, read: (_offset, data) => data.fill(0x11), write: () => {} });

test('levels: each writes itself and everything more severe; no log writes nothing and forwards nothing', () => {
  const info = new RecordingLog('info');
  assert.ok(logs(info, 'error') && logs(info, 'warn') && logs(info, 'info'));
  assert.not.ok(logs(info, 'debug'));
  assert.not.ok(logs(undefined, 'error'));
  assert.not.ok(forwardsEverything(undefined));
  assert.not.ok(forwardsEverything(info));
  assert.ok(forwardsEverything(new RecordingLog('debug')));
});

test('e820 lines are in Linux\'s own format', () => {
  assert.is(e820Line({ address: 0, size: 0x9fc00, type: 1 }), 'e820: [mem 0x0000000000000000-0x000000000009fbff] usable');
  assert.is(e820Line({ address: 0xfffbc000, size: 0x4000, type: 2 }), 'e820: [mem 0x00000000fffbc000-0x00000000fffbffff] reserved');
  assert.is(e820Line({ address: 0x1000, size: 0x1000, type: 9 }), 'e820: [mem 0x0000000000001000-0x0000000000001fff] type 9');
});

test('boot lines: the kernel\'s format, size and place, the protocol chosen and asked for, initrd, command line, e820, MP table', () => {
  const plan: BootPlan = {
    format: 'bzimage', protocol: 'linux', entry: 0x100200, kernelStart: 0x100000, kernelEnd: 0x1200000,
    commandLine: 'console=ttyS0 quiet', initrd: { address: 0x7fff000, size: 0x1000 },
    e820: [{ address: 0, size: 0x9fc00, type: 1 }], mpTable: { start: 0x9fc00, end: 0x9fcf8 },
  };
  assert.equal(bootLines(plan, 4096, 'auto'), [
    'kernel: bzImage of 4096 bytes loaded at 0x100000-0x11fffff',
    'boot protocol: linux (--boot-protocol auto), entry 0x100200',
    'initrd: 4096 bytes at 0x7fff000-0x7ffffff',
    'command line: "console=ttyS0 quiet"',
    'e820: [mem 0x0000000000000000-0x000000000009fbff] usable',
    'mp table: 0x9fc00-0x9fcf7',
  ]);
  assert.equal(bootLines(undefined, 0, 'auto'), ['boot: no kernel loaded (firmware from the reset vector, or a snapshot restored)']);
});

test('PCI lines: slot and the GSI of INTA#', () => {
  assert.equal(pciLines([{ id: 'disk0', slot: 2, irq: 9 }, { id: 'rng0', slot: 0x10, irq: 10 }]), [
    'pci 00:02.0: disk0, INTA# on GSI 9',
    'pci 00:10.0: rng0, INTA# on GSI 10',
  ]);
});

test('device addresses: every bus range with its IRQ at build; a range the guest maps, moves or unmaps is logged again, the rest not', () => {
  const io = new Bus('io');
  const mmio = new Bus('mmio');
  io.insert(0x3f8, 8, device('com1'));
  const registry: BoardDevice[] = [{ id: 'com1', bus: 'io', base: 0x3f8, length: 8, model: {}, irq: 4 }, { id: 'rng0', bus: 'mmio', base: 0, length: 0, model: {}, irq: 9 }];
  const board = { io, mmio, devices: () => registry };
  const log = new RecordingLog('info');
  const addresses = new DeviceAddressLog(log);
  addresses.update(board);
  assert.equal(log.lines, ['info: device com1: ports 0x3f8-0x3ff, irq 4']);
  mmio.insert(0xe0000000, 0x8000, device('rng0.bar0'));
  addresses.update(board);
  mmio.move(0xe0000000, 0xe1000000);
  addresses.update(board);
  mmio.remove(0xe1000000);
  addresses.update(board);
  addresses.update(board);
  assert.equal(log.lines.slice(1), [
    'info: device rng0.bar0: mmio 0xe0000000-0xe0007fff, irq 9 (by the guest)',
    'info: device rng0.bar0: mmio 0xe1000000-0xe1007fff, irq 9 (by the guest)',
    'info: device rng0.bar0: unmapped (by the guest)',
  ]);
});

test('unclaimed accesses: each address once, the first access\'s kind; claimed ones never', () => {
  const io = new Bus('io');
  const mmio = new Bus('mmio');
  io.insert(0x3f8, 8, device('com1'));
  const log = new RecordingLog('debug');
  reportUnclaimed(log, { io, mmio });
  io.write(0x80, Uint8Array.of(1));
  io.read(0x80, new Uint8Array(1));
  io.write(0x80, Uint8Array.of(2));
  io.read(0x3f8, new Uint8Array(1));
  io.read(0x2f8, new Uint8Array(1));
  mmio.read(0xd0100000, new Uint8Array(4));
  mmio.write(0xd0100000, new Uint8Array(4));
  assert.equal(log.lines, [
    'debug: unclaimed port 0x80, first hit: write dropped',
    'debug: unclaimed port 0x2f8, first hit: read answered with all ones',
    'debug: unclaimed mmio address 0xd0100000, first hit: read answered with all ones',
  ]);
});

test.run();

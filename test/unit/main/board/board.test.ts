import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Board, BoardHost } from '../../../../src/main/board/board';
import { planPci } from '../../../../src/main/board/pci';
import { GsiRouter, GsiRoute } from '../../../../src/main/kvm/gsi-router';
import type { MsiMessage } from '../../../../src/devices/interrupt';
import { isSnapshottable } from '../../../../src/devices/snapshot';
import { CmosError } from '../../../../src/devices/legacy/cmos';
import { TsvmmError } from '../../../../src/shared/errors';

// A Board on a fake host: no KVM. Kernel lines count their triggers, the
// GsiRouter records every table it commits, time moves by hand.
type Irqchip = 'kernel' | 'split';
const WALL_CLOCK_MS = Date.parse('2026-11-26T08:15:42Z');
const MIB = 1024 * 1024;

function makeHost(irqchip: Irqchip) {
  const edges = new Map<number, number>();
  const levels: Array<[number, boolean]> = [];
  const msis: MsiMessage[] = [];
  const tables: GsiRoute[][] = [];
  const time = {
    ns: 0n,
    timers: [] as Array<{ due: bigint; callback: () => void; cancelled: boolean }>,
    pending() {
      return this.timers.filter((t) => !t.cancelled);
    },
    /** Runs each due callback at its time, in order, up to `ns`. */
    advanceTo(ns: bigint) {
      for (;;) {
        const next = this.pending().filter((t) => t.due <= ns).sort((a, b) => (a.due < b.due ? -1 : 1))[0];
        if (!next) break;
        next.cancelled = true;
        this.ns = next.due;
        next.callback();
      }
      this.ns = ns;
    },
  };
  const host: BoardHost = {
    kernelEdgeLine: (gsi) => ({ trigger: () => { edges.set(gsi, (edges.get(gsi) ?? 0) + 1); } }),
    kernelLevelLine: (gsi) => ({ trigger: () => { edges.set(gsi, (edges.get(gsi) ?? 0) + 1); }, setLevel: (asserted) => { levels.push([gsi, asserted]); } }),
    msi: { signal: (message) => { msis.push({ ...message }); } },
    gsiRouter: new GsiRouter((routes) => { tables.push(routes.map((r) => ({ ...r }))); }, irqchip),
    now: () => time.ns,
    schedule: (delayNs, callback) => {
      const timer = { due: time.ns + delayNs, callback, cancelled: false };
      time.timers.push(timer);
      return { cancel: () => { timer.cancelled = true; } };
    },
    wallClockMs: () => WALL_CLOCK_MS,
  };
  return { host, edges, levels, msis, tables, time };
}

function makeBoard(irqchip: Irqchip) {
  const fake = makeHost(irqchip);
  const picInt: boolean[] = [];
  let resets = 0;
  const board = new Board({
    vcpuCount: 2,
    memoryBelow4G: 256 * MIB,
    memoryAbove4G: 0,
    irqchip,
    host: fake.host,
    onReset: () => { resets++; },
    onPicInt: (asserted) => { picInt.push(asserted); },
  });
  const outb = (port: number, value: number) => assert.ok(board.io.write(port, Uint8Array.of(value)), `port 0x${port.toString(16)} is claimed`);
  const inb = (port: number) => {
    const data = new Uint8Array(1);
    board.io.read(port, data);
    return data[0];
  };
  const u32 = (value: number) => new Uint8Array([value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24]);
  /** Programs IOAPIC pin `pin`'s low dword (high dword left 0: destination APIC 0). */
  const ioapicProgram = (pin: number, low: number) => {
    board.mmio.write(0xfec0_0000, u32(0x10 + 2 * pin));
    board.mmio.write(0xfec0_0010, u32(low));
  };
  /** The BIOS/Linux 8259 sequence: vectors 0x20 and 0x28, slave on IR2, 8086 mode, nothing masked. */
  const picInit = () => {
    const sequence = [[0x20, 0x11], [0x21, 0x20], [0x21, 0x04], [0x21, 0x01], [0xa0, 0x11], [0xa1, 0x28], [0xa1, 0x02], [0xa1, 0x01]];
    for (const [port, value] of sequence) outb(port, value);
  };
  return { board, ...fake, picInt, resets: () => resets, outb, inb, ioapicProgram, picInit };
}

/**
 * The legacy PC devices, which the board adds first: what follows them (the
 * PCI root and functions, the extra devices) is another test's business.
 */
const listed = (board: Board, count: number) =>
  board.devices().slice(0, count).map(({ id, bus, base, length, irq }) => (irq === undefined ? { id, bus, base, length } : { id, bus, base, length, irq }));

const COMS = [
  { id: 'com1', bus: 'io', base: 0x3f8, length: 8, irq: 4 },
  { id: 'com2', bus: 'io', base: 0x2f8, length: 8, irq: 3 },
  { id: 'com3', bus: 'io', base: 0x3e8, length: 8, irq: 4 },
  { id: 'com4', bus: 'io', base: 0x2e8, length: 8, irq: 3 },
];
const I8042_DATA_AND_PORT_92 = [
  { id: 'i8042-data', bus: 'io', base: 0x60, length: 1 },
  { id: 'system-control-a', bus: 'io', base: 0x92, length: 1 },
];
const EMPTY = [
  { id: 'io-delay', bus: 'io', base: 0xed, length: 1 },
  { id: 'fpu', bus: 'io', base: 0xf0, length: 2 },
];

test('kernel irqchip: the devices, their buses, bases and lengths', () => {
  const { board } = makeBoard('kernel');
  const expected = [
    { id: 'pit', bus: 'io', base: 0x40, length: 8 }, // KVM's PIT: claimed so it reads as nothing, as crosvm
    ...COMS,
    { id: 'cmos', bus: 'io', base: 0x70, length: 2 },
    { id: 'i8042', bus: 'io', base: 0x61, length: 4, irq: 1 },
    ...I8042_DATA_AND_PORT_92,
    ...EMPTY,
  ];
  assert.equal(listed(board, expected.length), expected);
  assert.equal(board.mmio.ranges(), []);
  board.dispose();
});

test('split irqchip: the PIC, IOAPIC and PIT in userspace, port 0x61 to the PIT, the i8042 from 0x62', () => {
  const { board } = makeBoard('split');
  const expected = [
    { id: 'pic-master', bus: 'io', base: 0x20, length: 2 },
    { id: 'pic-slave', bus: 'io', base: 0xa0, length: 2 },
    { id: 'pic-elcr', bus: 'io', base: 0x4d0, length: 2 },
    { id: 'ioapic', bus: 'mmio', base: 0xfec0_0000, length: 0x100 },
    { id: 'pit', bus: 'io', base: 0x40, length: 4, irq: 0 },
    { id: 'pit-speaker', bus: 'io', base: 0x61, length: 1 },
    ...COMS,
    { id: 'cmos', bus: 'io', base: 0x70, length: 2 },
    { id: 'i8042', bus: 'io', base: 0x62, length: 3, irq: 1 },
    ...I8042_DATA_AND_PORT_92,
    ...EMPTY,
  ];
  assert.equal(listed(board, expected.length), expected);
  assert.ok(board.mmio.ranges().some((r) => r.base === 0xfec0_0000 && r.length === 0x100));
  board.dispose();
});

test('every listed device is on its bus at its base, and the buses claim nothing else', () => {
  for (const irqchip of ['kernel', 'split'] as const) {
    const { board } = makeBoard(irqchip);
    const devices = board.devices();
    for (const { id, bus, base, length } of devices) {
      const onBus = (bus === 'io' ? board.io : board.mmio).ranges().find((r) => r.base === base);
      assert.ok(onBus, `${irqchip}: ${id} is on the ${bus} bus`);
      assert.is(onBus.length, length, `${irqchip}: ${id}'s length`);
    }
    assert.is(board.io.ranges().length + board.mmio.ranges().length, devices.length, irqchip);
    assert.equal(board.device('cmos').id, 'cmos');
    assert.throws(() => board.device('com5'), (e: unknown) => e instanceof TsvmmError && /no device 'com5'/.test(e.message));
    board.dispose();
  }
});

test('kernel irqchip: a COM1 THR-empty interrupt triggers GSI 4, COM2\'s GSI 3', () => {
  const { board, edges, outb } = makeBoard('kernel');
  outb(0x3f9, 0x02); // COM1 IER: THR empty; THR is empty, so it fires at once
  assert.equal([...edges], [[4, 1]]);
  outb(0x2f9, 0x02);
  assert.equal([...edges], [[4, 1], [3, 1]]);
  board.dispose();
});

test('split irqchip: a COM1 THR-empty interrupt pulses PIC IRQ 4 and IOAPIC pin 4', () => {
  const { board, edges, msis, tables, picInt, outb, ioapicProgram, picInit } = makeBoard('split');
  picInit();
  ioapicProgram(4, 0x34); // unmasked, edge, fixed, vector 0x34
  assert.equal(tables.at(-1), [{ gsi: 4, kind: 'msi', message: { address: 0xfee0_0000, data: 0x4034 } }]); // mirrored into KVM's table
  outb(0x3f9, 0x02);
  assert.equal(picInt, [true]);
  assert.is(board.acknowledgeInterrupt(), 0x24);
  assert.equal(msis, [{ address: 0xfee0_0000, data: 0x4034 }]);
  assert.is(edges.size, 0); // nothing goes to KVM's irqchip lines
  board.dispose();
});

const LEGACY_IDS = new Set(['pic-master', 'pic-slave', 'pic-elcr', 'ioapic', 'pit', 'pit-speaker', 'com1', 'com2', 'com3', 'com4', 'cmos', 'i8042', 'system-control-a', 'io-delay', 'fpu']);
/** The legacy devices' ids in a board state (PCI devices may add their own). */
const legacyIds = (states: Record<string, unknown>) => Object.keys(states).filter((id) => LEGACY_IDS.has(id));

/** The legacy ids snapshot() has: every model with snapshot/restore. */
function expectedSnapshotIds(board: Board, irqchip: Irqchip): string[] {
  const coms = ['com1', 'com2', 'com3', 'com4'];
  assert.ok(isSnapshottable(board.com1));
  const after = ['cmos', 'i8042', 'system-control-a'];
  return irqchip === 'kernel' ? [...coms, ...after] : ['pic-master', 'ioapic', 'pit', 'pit-speaker', ...coms, ...after];
}

test('snapshot() has every snapshottable device by id', () => {
  for (const irqchip of ['kernel', 'split'] as const) {
    const { board } = makeBoard(irqchip);
    const states = board.snapshot();
    assert.equal(legacyIds(states), expectedSnapshotIds(board, irqchip), irqchip);
    assert.ok('com1' in states);
    assert.not.ok('pic-slave' in states); // the PIC's other port views: one Pic, one state, under pic-master
    board.dispose();
  }
});

test('kernel irqchip: snapshot() round-trips through JSON into a fresh board', () => {
  const a = makeBoard('kernel');
  a.outb(0x70, 0x50);
  a.outb(0x71, 0x5a); // CMOS NVRAM byte
  const saved = JSON.parse(JSON.stringify(a.board.snapshot())) as Record<string, unknown>;
  const b = makeBoard('kernel');
  b.board.restore(saved);
  assert.equal(b.board.snapshot(), saved);
  assert.is(b.inb(0x70), 0x50); // the CMOS index survived
  assert.is(b.inb(0x71), 0x5a);
  b.outb(0x64, 0xfe); // the restored i8042 still resets
  assert.is(b.resets(), 1);
  a.board.dispose();
  b.board.dispose();
});

test('split irqchip: snapshot() round-trips through JSON; the restored PIT ticks into the restored IOAPIC', () => {
  const a = makeBoard('split');
  a.picInit();
  a.ioapicProgram(0, 0x30); // the PIT's pin
  a.outb(0x43, 0x34); // PIT channel 0, mode 2
  a.outb(0x40, 0xa9);
  a.outb(0x40, 0x04); // 1193: IRQ 0 every 999848 ns
  a.outb(0x61, 0x03); // port B: channel 2 gate, speaker data
  a.outb(0x4d0, 0x20); // ELCR1: IRQ 5 level
  a.outb(0x70, 0x51);
  a.outb(0x71, 0xa5);
  const saved = JSON.parse(JSON.stringify(a.board.snapshot())) as Record<string, unknown>;
  assert.equal(legacyIds(saved), expectedSnapshotIds(a.board, 'split'));
  a.board.dispose();

  const b = makeBoard('split');
  b.board.restore(saved);
  assert.equal(b.board.snapshot(), saved);
  assert.equal(b.msis, []); // restoring sends no MSI
  // but the host's routing table follows the restored IOAPIC: pin 0's route, the one unmasked.
  assert.equal(b.tables, [[{ gsi: 0, kind: 'msi', message: { address: 0xfee0_0000, data: 0x4030 } }]]);
  assert.is(b.inb(0x4d0), 0x20);
  assert.is(b.inb(0x61) & 0x0f, 0x03);
  b.time.advanceTo(999_848n);
  assert.equal(b.msis, [{ address: 0xfee0_0000, data: 0x4030 }]);
  assert.equal(b.picInt, [true]);
  assert.is(b.board.acknowledgeInterrupt(), 0x20);
  b.board.dispose();
});

test('restore() in place: the same board\'s devices take their saved state back and stay wired', () => {
  const { board, msis, outb, inb, ioapicProgram, picInit, time } = makeBoard('split');
  picInit();
  ioapicProgram(0, 0x30);
  outb(0x43, 0x34);
  outb(0x40, 0xa9);
  outb(0x40, 0x04);
  const saved = JSON.parse(JSON.stringify(board.snapshot())) as Record<string, unknown>;
  const models = board.devices().map((d) => d.model);
  outb(0x43, 0x30); // PIT channel 0 stopped
  ioapicProgram(0, 0x1_0030); // pin 0 masked
  outb(0x21, 0xff); // everything masked
  board.restore(saved);
  assert.ok(board.devices().every((d, i) => d.model === models[i]));
  assert.is(inb(0x21), 0x00);
  time.advanceTo(999_848n);
  assert.equal(msis, [{ address: 0xfee0_0000, data: 0x4030 }]);
  board.dispose();
});

test('restore() refuses a state missing a device id, and a device refuses its own bad state', () => {
  for (const irqchip of ['kernel', 'split'] as const) {
    const { board } = makeBoard(irqchip);
    const states = board.snapshot();
    const withoutCmos = { ...states };
    delete withoutCmos.cmos;
    assert.throws(() => board.restore(withoutCmos), (e: unknown) => e instanceof TsvmmError && e.kind === 'usage' && /the saved board state has no entry for device 'cmos'/.test(e.message));
    assert.throws(() => board.restore({ ...states, cmos: { index: 0 } }), (e: unknown) => e instanceof CmosError && /cannot restore CMOS state: data is missing/.test(e.message));
    board.dispose();
  }
});

test('a firmware board has fw_cfg at 0x510 with the RAM map and CPU count; debugcon at 0x402 only when it has an output', () => {
  const memory = { read: () => new Uint8Array(0), write: () => {} } as unknown as import('../../../../src/devices/virtio/queue').DmaMemory;
  const logged: number[] = [];
  const board = new Board({
    vcpuCount: 4, memoryBelow4G: 128 * MIB, memoryAbove4G: 0, irqchip: 'kernel', host: makeHost('kernel').host, onReset: () => {},
    firmware: { e820: [{ address: 0, size: 128 * MIB, type: 1 }] }, dmaMemory: memory, debugconOutput: (bytes) => logged.push(...bytes),
  });
  const inb = (port: number) => {
    const data = new Uint8Array(1);
    board.io.read(port, data);
    return data[0];
  };
  const selectItem = (key: number) => board.io.write(0x510, Uint8Array.of(key & 0xff, key >> 8));
  selectItem(0x0000);
  assert.is(String.fromCharCode(inb(0x511), inb(0x511), inb(0x511), inb(0x511)), 'QEMU');
  selectItem(0x0005); // nb_cpus, le16
  assert.equal([inb(0x511), inb(0x511)], [4, 0]);
  selectItem(0x0004); // nographic: SeaBIOS's console goes to COM1
  assert.equal([inb(0x511), inb(0x511)], [1, 0]);
  assert.is(board.device('fw-cfg').length, 12);
  assert.is(inb(0x402), 0xe9);
  board.io.write(0x402, Uint8Array.of(0x53));
  assert.equal(logged, [0x53]);
  board.dispose();

  const plain = makeBoard('kernel').board;
  assert.not.ok(plain.devices().some((d) => d.id === 'fw-cfg' || d.id === 'debugcon'));
  assert.is(plain.io.find(0x510), undefined);
  assert.is(plain.io.find(0x402), undefined);
  plain.dispose();
});

test('the resets a guest can ask for name their source: i8042 0xfe, port 0x92 bit 0, port 0xcf9 bit 2', () => {
  const sources: string[] = [];
  const board = new Board({ vcpuCount: 1, memoryBelow4G: 64 * MIB, memoryAbove4G: 0, irqchip: 'kernel', host: makeHost('kernel').host, onReset: (source) => sources.push(source) });
  board.io.write(0x64, Uint8Array.of(0xfe));
  board.io.write(0x92, Uint8Array.of(0x01));
  board.io.write(0xcf9, Uint8Array.of(0x06));
  assert.equal(sources, ['i8042', 'port 0x92', 'port 0xcf9']);
  board.dispose();
});

test('PCI: the host bridge at 00:00.0, the PIIX3 ISA bridge at 00:01.0, and virtio devices from slot 2 (planPci)', () => {
  const { board } = makeBoard('kernel');
  const vendorDevice = (slot: number) => {
    board.io.write(0xcf8, Uint8Array.of(0, slot << 3, 0, 0x80));
    const data = new Uint8Array(4);
    board.io.read(0xcfc, data);
    return new DataView(data.buffer).getUint32(0, true);
  };
  assert.is(vendorDevice(0), 0x1237_8086);
  assert.is(vendorDevice(1), 0x7000_8086);
  assert.is(vendorDevice(2), 0xffff_ffff);
  assert.equal(planPci(['disk0', 'rng0']).map(({ slot, irq }) => [slot, irq]), [[2, 9], [3, 10]]);
  board.dispose();
});

test('SeaBIOS\'s PCI pass on a board with a virtio-rng: BAR sizing, a new BAR 0, decode on; the device answers only at the new place', async () => {
  const { GuestMemory: FakeMemory } = await import('../../../fixtures/virtio-driver');
  const { VirtioRng } = await import('../../../../src/devices/virtio/rng');
  let rangesChanged = 0;
  const board = new Board({
    vcpuCount: 1, memoryBelow4G: 64 * MIB, memoryAbove4G: 0, irqchip: 'kernel', host: makeHost('kernel').host, onReset: () => {},
    dmaMemory: new FakeMemory(0x10000), onRangesChanged: () => rangesChanged++,
    pciDevices: [{ placement: planPci(['rng0'])[0], backend: new VirtioRng((into) => into.fill(0x5a)) }],
  });
  const select = (register: number) => board.io.write(0xcf8, Uint8Array.of(register, 2 << 3, 0, 0x80));
  const configRead32 = (register: number) => {
    select(register);
    const data = new Uint8Array(4);
    board.io.read(0xcfc, data);
    return new DataView(data.buffer).getUint32(0, true);
  };
  const configWrite = (register: number, bytes: number[]) => {
    select(register);
    board.io.write(0xcfc, Uint8Array.from(bytes));
  };
  const mmioRead32 = (address: number) => {
    const data = new Uint8Array(4);
    return board.mmio.read(address, data) ? new DataView(data.buffer).getUint32(0, true) : undefined;
  };
  const oldBar = (configRead32(0x10) & ~0xf) >>> 0;
  assert.is(oldBar, 0xe000_0000);
  assert.is(board.device('rng0').base, oldBar);
  assert.is(mmioRead32(oldBar + 0x14) !== undefined, false, 'decoding is off until the guest enables it'); // device_status
  // pci_bios_get_bar: all ones, read the size mask, put the old value back; for every BAR
  for (let bar = 0; bar < 6; bar++) {
    const register = 0x10 + 4 * bar;
    const saved = configRead32(register);
    configWrite(register, [0xff, 0xff, 0xff, 0xff]);
    const mask = configRead32(register);
    configWrite(register, [saved & 0xff, (saved >>> 8) & 0xff, (saved >>> 16) & 0xff, saved >>> 24]);
    if (bar === 0) assert.is(mask, 0xffff_8000, 'BAR 0: 32 KiB of 32-bit memory');
    else assert.is(mask, 0, `BAR ${bar}: not implemented`);
  }
  // pci_region_map_one_entry and pci_bios_init_device: the new address, then memory decode and bus mastering
  configWrite(0x10, [0x00, 0x80, 0xbf, 0xfe]);
  configWrite(0x04, [0x06, 0x00]);
  assert.is(mmioRead32(oldBar), undefined, 'nothing left at the old BAR');
  const newBar = 0xfebf_8000;
  assert.is(mmioRead32(newBar + 0x14), 0, 'common config at the new BAR: device_status 0');
  board.mmio.write(newBar + 0x00, Uint8Array.of(1, 0, 0, 0)); // device_feature_select = 1
  assert.is(mmioRead32(newBar + 0x04)! & 1, 1, 'VERSION_1 offered in feature word 1');
  assert.ok(board.mmio.ranges().some((r) => r.base === newBar && r.length === 0x8000));
  assert.ok(rangesChanged >= 1, 'the vCPUs\' claims were republished');
  assert.equal({ ...board.device('rng0'), model: undefined }, { id: 'rng0', bus: 'mmio', base: newBar, length: 0x8000, model: undefined, irq: 9 }, 'the registry lists BAR 0 where it is now');
  assert.throws(() => board.move('rng0', 0xe000_0000), /'rng0' is a PCI device: it moves when its BAR 0 is reprogrammed in configuration space/);
  board.dispose();
});

test('a firmware board write-protects 0xc0000-0xfffff as PAM says: read-only at reset, writable after SeaBIOS enables it, read-only again', () => {
  const memory = { read: () => new Uint8Array(0), write: () => {} } as unknown as import('../../../../src/devices/virtio/queue').DmaMemory;
  const calls: string[] = [];
  const host = { ...makeHost('kernel').host, protectRam: (address: number, size: number, readOnly: boolean) => calls.push(`${address.toString(16)}+${size.toString(16)} ${readOnly ? 'ro' : 'rw'}`) };
  const board = new Board({ vcpuCount: 1, memoryBelow4G: 128 * MIB, memoryAbove4G: 0, irqchip: 'kernel', host, onReset: () => {}, firmware: { e820: [] }, dmaMemory: memory });
  assert.is(calls.length, 13);
  assert.ok(calls.every((call) => call.endsWith(' ro')));
  calls.length = 0;
  const pamWrite = (register: number, bytes: number[]) => {
    board.io.write(0xcf8, Uint8Array.of(register & 0xfc, 0, 0, 0x80));
    board.io.write(0xcfc, Uint8Array.from(bytes));
  };
  pamWrite(0x58, [0x00, 0x30, 0x33, 0x33]); // __make_bios_writable_intel, first dword
  assert.equal(calls, ['f0000+10000 rw', 'c0000+4000 rw', 'c4000+4000 rw', 'c8000+4000 rw', 'cc000+4000 rw']);
  calls.length = 0;
  pamWrite(0x58, [0x00, 0x10, 0x33, 0x33]);
  assert.equal(calls, ['f0000+10000 ro']);
  calls.length = 0;
  pamWrite(0x60, [0x0a, 0x0a, 0x0b, 0x0b]); // elsewhere in the host bridge: nothing to do
  assert.equal(calls, []);
  board.dispose();
  const kernelBoard = new Board({ vcpuCount: 1, memoryBelow4G: 128 * MIB, memoryAbove4G: 0, irqchip: 'kernel', host, onReset: () => {} });
  assert.equal(calls, [], 'a kernel boot leaves that RAM alone');
  kernelBoard.dispose();
});

test.run();

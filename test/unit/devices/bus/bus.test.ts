import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bus, BusError } from '../../../../src/devices/bus/bus';
import { BusDevice, ByteRegisterDevice } from '../../../../src/devices/bus/bus-device';
import { byteRegisters } from '../../../../src/devices/bus/width-adapter';
import { NoDevice } from '../../../../src/devices/legacy/no-device';

/** Records every access it receives and answers reads with a fixed byte. */
class RecordingDevice implements BusDevice {
  reads: Array<{ offset: number; width: number }> = [];
  writes: Array<{ offset: number; bytes: number[] }> = [];
  constructor(readonly name: string, private readonly fill = 0x5a) {}
  read(offset: number, data: Uint8Array): void {
    this.reads.push({ offset, width: data.length });
    data.fill(this.fill);
  }
  write(offset: number, data: Uint8Array): void {
    this.writes.push({ offset, bytes: [...data] });
  }
}

test('find returns the owning device, its base and the offset', () => {
  const bus = new Bus('io');
  const com1 = new RecordingDevice('com1');
  const cmos = new RecordingDevice('cmos');
  bus.insert(0x3f8, 8, com1);
  bus.insert(0x70, 2, cmos);
  assert.equal(bus.find(0x3fd), { device: com1, base: 0x3f8, offset: 5 });
  assert.equal(bus.find(0x3f8), { device: com1, base: 0x3f8, offset: 0 });
  assert.equal(bus.find(0x3ff), { device: com1, base: 0x3f8, offset: 7 });
  assert.equal(bus.find(0x71), { device: cmos, base: 0x70, offset: 1 });
  assert.is(bus.find(0x400), undefined); // one past com1's end
  assert.is(bus.find(0x3f7), undefined); // one before com1
  assert.is(bus.find(0x72), undefined);
  assert.is(bus.find(0), undefined);
});

test('find works across many ranges (binary search over sorted ranges)', () => {
  const bus = new Bus('mmio');
  const devices: RecordingDevice[] = [];
  // Insert in a scrambled order: ranges at k * 0x1000, each 0x100 long.
  const order = [7, 2, 9, 0, 5, 3, 8, 1, 6, 4];
  for (const k of order) {
    const device = new RecordingDevice(`dev${k}`);
    devices[k] = device;
    bus.insert(0xd000_0000 + k * 0x1000, 0x100, device);
  }
  for (let k = 0; k < 10; k++) {
    assert.equal(bus.find(0xd000_0000 + k * 0x1000 + 0xff), { device: devices[k], base: 0xd000_0000 + k * 0x1000, offset: 0xff });
    assert.is(bus.find(0xd000_0000 + k * 0x1000 + 0x100), undefined);
  }
});

test('ranges() lists claimed ranges sorted by base', () => {
  const bus = new Bus('io');
  bus.insert(0x3f8, 8, new RecordingDevice('com1'));
  bus.insert(0x70, 2, new RecordingDevice('cmos'));
  bus.insert(0x2f8, 8, new RecordingDevice('com2'));
  assert.equal(bus.ranges(), [
    { base: 0x70, length: 2, name: 'cmos' },
    { base: 0x2f8, length: 8, name: 'com2' },
    { base: 0x3f8, length: 8, name: 'com1' },
  ]);
});

test('read and write dispatch with the offset from the base', () => {
  const bus = new Bus('io');
  const device = new RecordingDevice('dev', 0x42);
  bus.insert(0x60, 4, device);
  const data = new Uint8Array(2);
  assert.is(bus.read(0x62, data), true);
  assert.equal([...data], [0x42, 0x42]);
  assert.is(bus.write(0x63, Uint8Array.of(7)), true);
  assert.equal(device.reads, [{ offset: 2, width: 2 }]);
  assert.equal(device.writes, [{ offset: 3, bytes: [7] }]);
  assert.is(bus.unclaimedReads, 0);
  assert.is(bus.unclaimedWrites, 0);
});

test('unclaimed reads return all ones and are counted, unclaimed writes are counted', () => {
  const bus = new Bus('io');
  bus.insert(0x60, 4, new RecordingDevice('dev'));
  const data = Uint8Array.of(1, 2, 3, 4);
  assert.is(bus.read(0x80, data), false);
  assert.equal([...data], [0xff, 0xff, 0xff, 0xff]);
  assert.is(bus.read(0x5f, new Uint8Array(1)), false);
  assert.is(bus.write(0x64, Uint8Array.of(1)), false);
  assert.is(bus.unclaimedReads, 2);
  assert.is(bus.unclaimedWrites, 1);
});

test('onUnclaimed hears each unclaimed access (address and kind), never a claimed one', () => {
  const bus = new Bus('io');
  bus.insert(0x60, 4, new RecordingDevice('dev'));
  const heard: string[] = [];
  bus.onUnclaimed = (address, access) => heard.push(`${access}@${address.toString(16)}`);
  bus.read(0x60, new Uint8Array(1));
  bus.write(0x63, Uint8Array.of(1));
  bus.read(0x80, new Uint8Array(1));
  bus.write(0x80, Uint8Array.of(1));
  bus.write(0x5f, Uint8Array.of(1));
  assert.equal(heard, ['read@80', 'write@80', 'write@5f']);
});

test('an access straddling the end of a range goes whole to the owner of its first byte', () => {
  const bus = new Bus('io');
  const low = new RecordingDevice('low', 0x11);
  const high = new RecordingDevice('high', 0x22);
  bus.insert(0x100, 2, low);
  bus.insert(0x102, 2, high);
  const data = new Uint8Array(4);
  assert.is(bus.read(0x101, data), true);
  assert.equal([...data], [0x11, 0x11, 0x11, 0x11]);
  assert.equal(low.reads, [{ offset: 1, width: 4 }]);
  assert.equal(high.reads, []);
});

test('insert rejects overlaps, naming both devices and both ranges', () => {
  const bus = new Bus('io');
  bus.insert(0x3f8, 8, new RecordingDevice('com1'));
  assert.throws(() => bus.insert(0x3f0, 9, new RecordingDevice('intruder')), (e: unknown) =>
    e instanceof BusError && e.message.includes("'intruder' [0x3f0, 0x3f9)") && e.message.includes("'com1' [0x3f8, 0x400)"));
  assert.throws(() => bus.insert(0x3ff, 1, new RecordingDevice('last')), /overlaps 'com1'/);
  assert.throws(() => bus.insert(0x3fa, 2, new RecordingDevice('inside')), /overlaps 'com1'/);
  assert.throws(() => bus.insert(0x300, 0x200, new RecordingDevice('around')), (e: unknown) => e instanceof BusError);
  // Adjacent ranges touch but do not overlap.
  bus.insert(0x3f0, 8, new RecordingDevice('before'));
  bus.insert(0x400, 1, new RecordingDevice('after'));
  assert.is(bus.ranges().length, 3);
});

test('insert rejects zero or negative lengths and out-of-range bases', () => {
  const io = new Bus('io');
  const device = new RecordingDevice('dev');
  assert.throws(() => io.insert(0x10, 0, device), /length must be a positive integer/);
  assert.throws(() => io.insert(0x10, -1, device), /length must be a positive integer/);
  assert.throws(() => io.insert(-1, 1, device), /base must be a non-negative integer/);
  assert.throws(() => io.insert(1.5, 1, device), /base must be a non-negative integer/);
  assert.throws(() => io.insert(0xffff, 2, device), /ends past 0xffff/);
  io.insert(0xffff, 1, device); // the last port is fine
  const mmio = new Bus('mmio');
  mmio.insert(0x1_0000_0000, 0x1000, device); // above 4 GiB is fine on MMIO
  assert.throws(() => mmio.insert(2 ** 52 - 1, 2, device), /ends past 0xfffffffffffff/);
  assert.is(mmio.kind, 'mmio');
});

class Registers implements ByteRegisterDevice {
  readonly name = 'regs';
  written: Array<[number, number]> = [];
  readRegister(offset: number): number {
    return 0x10 + offset;
  }
  writeRegister(offset: number, value: number): void {
    this.written.push([offset, value]);
  }
}

test('width adapter forwards 1-byte accesses and rejects wider ones', () => {
  const registers = new Registers();
  const adapter = byteRegisters(registers);
  assert.is(adapter.name, 'regs');
  const one = new Uint8Array(1);
  adapter.read(3, one);
  assert.is(one[0], 0x13);
  adapter.write(2, Uint8Array.of(0xab));
  assert.equal(registers.written, [[2, 0xab]]);

  const wide = Uint8Array.of(1, 2);
  adapter.read(0, wide);
  assert.equal([...wide], [0xff, 0xff]);
  adapter.read(0, new Uint8Array(4));
  adapter.write(0, Uint8Array.of(1, 2, 3, 4));
  assert.is(adapter.rejectedReads, 2);
  assert.is(adapter.rejectedWrites, 1);
  assert.equal(registers.written, [[2, 0xab]]);
});

test('width adapter on a bus: dispatch reaches the register device', () => {
  const bus = new Bus('io');
  const registers = new Registers();
  bus.insert(0x70, 2, byteRegisters(registers));
  const data = new Uint8Array(1);
  bus.read(0x71, data);
  assert.is(data[0], 0x11);
});

test('NoDevice reads zero at any width and ignores writes', () => {
  const device = new NoDevice('fpu');
  const data = Uint8Array.of(9, 9, 9, 9);
  device.read(1, data);
  assert.equal([...data], [0, 0, 0, 0]);
  device.write(0, Uint8Array.of(1));
  assert.is(device.name, 'fpu');
});

// Which ports the board claims with a NoDevice (crosvm's io-delay 0xed and fpu 0xf0-0xf1) is checked in board.test.ts.
test('a NoDevice range reads as zeros and ends where it ends', () => {
  const bus = new Bus('io');
  bus.insert(0xf0, 2, new NoDevice('fpu'));
  const data = new Uint8Array(1);
  assert.is(bus.read(0xf1, data), true);
  assert.is(data[0], 0);
  assert.is(bus.read(0xf2, data), false);
});

test('remove frees a range; move relocates it, all or nothing', () => {
  const bus = new Bus('mmio');
  const bar: BusDevice = { name: 'bar', read: (offset, data) => data.fill(offset), write: () => {} };
  const other: BusDevice = { name: 'other', read: (_offset, data) => data.fill(0x77), write: () => {} };
  bus.insert(0xd000_0000, 0x1000, bar);
  bus.insert(0xe000_0000, 0x1000, other);
  const data = new Uint8Array(1);
  bus.read(0xd000_0010, data); // leaves bar as the last hit
  bus.move(0xd000_0000, 0xd100_0000);
  assert.is(bus.read(0xd000_0010, data), false, 'the old place reads as unclaimed (the last-hit cache forgot it)');
  assert.is(bus.read(0xd100_0010, data), true);
  assert.is(data[0], 0x10, 'the device sees offsets from its new base');
  assert.throws(() => bus.move(0xd100_0000, 0xe000_0800), /overlaps 'other'/);
  assert.is(bus.find(0xd100_0000)?.device, bar, 'a refused move leaves the range where it was');
  assert.is(bus.remove(0xd100_0000), bar);
  assert.is(bus.find(0xd100_0000), undefined);
  assert.throws(() => bus.remove(0xd100_0000), /nothing was inserted there/);
});

test.run();

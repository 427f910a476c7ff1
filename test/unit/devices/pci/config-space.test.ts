import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PciConfigSpace } from '../../../../src/devices/pci/config-space';

// Offsets and rules from the PCI Local Bus Specification 3.0, 6.1-6.2 (type-0 header), not from the model.

function read(space: PciConfigSpace, offset: number, width: number): number {
  const data = new Uint8Array(width);
  space.read(offset, data);
  let value = 0;
  for (let i = width - 1; i >= 0; i--) value = value * 256 + data[i];
  return value;
}

function write(space: PciConfigSpace, offset: number, width: number, value: number): void {
  const data = new Uint8Array(width);
  for (let i = 0; i < width; i++) data[i] = Math.floor(value / 2 ** (8 * i)) & 0xff;
  space.write(offset, data);
}

function makeSpace() {
  return new PciConfigSpace({
    vendorId: 0x1af4, deviceId: 0x1042, classCode: 0x01, subclass: 0x80, progIf: 0x05, revision: 0x01,
    subsystemVendorId: 0x1af4, subsystemId: 0x0040,
  });
}

test('identity fields read back at their header offsets', () => {
  const space = makeSpace();
  assert.is(read(space, 0x00, 2), 0x1af4);
  assert.is(read(space, 0x02, 2), 0x1042);
  assert.is(read(space, 0x00, 4), 0x1042_1af4);
  assert.is(read(space, 0x08, 1), 0x01); // revision
  assert.is(read(space, 0x09, 1), 0x05); // prog-if
  assert.is(read(space, 0x0a, 1), 0x80); // subclass
  assert.is(read(space, 0x0b, 1), 0x01); // base class
  assert.is(read(space, 0x08, 4), 0x0180_0501);
  assert.is(read(space, 0x0e, 1), 0x00); // header type 0, single function
  assert.is(read(space, 0x2c, 2), 0x1af4);
  assert.is(read(space, 0x2e, 2), 0x0040);
  assert.is(read(space, 0x04, 4), 0); // command and status at reset (no capabilities yet)
});

test('read-only registers keep their value when written', () => {
  const space = makeSpace();
  space.setInterrupt(11, 1);
  const readOnly = [0x00, 0x08, 0x0c + 2, 0x2c, 0x30, 0x34];
  const before = readOnly.map((at) => read(space, at, 4));
  for (const at of [0x00, 0x08, 0x2c, 0x30, 0x34]) write(space, at, 4, 0xffff_ffff);
  write(space, 0x0e, 1, 0xff); // header type
  write(space, 0x0f, 1, 0xff); // BIST
  assert.equal(readOnly.map((at) => read(space, at, 4)), before);
  // BARs that were never declared are hardwired to zero (6.2.5.1: unimplemented BARs read 0).
  for (let bar = 0; bar < 6; bar++) {
    write(space, 0x10 + 4 * bar, 4, 0xffff_ffff);
    assert.is(read(space, 0x10 + 4 * bar, 4), 0, `BAR${bar}`);
  }
  // Interrupt Line is read/write, Interrupt Pin read-only.
  write(space, 0x3c, 2, 0xffff);
  assert.is(read(space, 0x3c, 1), 0xff);
  assert.is(read(space, 0x3d, 1), 1);
});

test('command register: only the implemented control bits are writable', () => {
  const space = makeSpace();
  write(space, 0x04, 2, 0xffff);
  const command = read(space, 0x04, 2);
  // I/O space, memory space, bus master and INTx disable are what a driver sets.
  for (const bit of [0, 1, 2, 10]) assert.ok((command & (1 << bit)) !== 0, `bit ${bit} writable`);
  // Bits 11-15 are reserved (read 0); special cycles (3), MWI (4), VGA snoop (5), fast back-to-back (9) are hardwired 0 on a virtual device.
  for (const bit of [3, 4, 5, 7, 9, 11, 12, 13, 14, 15]) assert.is(command & (1 << bit), 0, `bit ${bit} stays 0`);
  assert.is(space.command, command);
  write(space, 0x04, 2, 0);
  assert.is(read(space, 0x04, 2), 0);
  // A byte write to the high half of command changes only that byte.
  write(space, 0x04, 2, 0x0007);
  write(space, 0x05, 1, 0x04);
  assert.is(read(space, 0x04, 2), 0x0407);
});

test('status register: bits 3 and 4 are read-only, the error bits are RW1C', () => {
  const space = makeSpace();
  space.addCapability(new Uint8Array([0x05, 0, 0, 0]));
  space.setInterruptStatus(true);
  assert.is(read(space, 0x06, 2), 0x0018);
  write(space, 0x06, 2, 0x0018); // RO bits: a write of 1 does not clear them
  assert.is(read(space, 0x06, 2), 0x0018);
  write(space, 0x06, 2, 0x0000);
  assert.is(read(space, 0x06, 2), 0x0018);
  // The device sets error bits; the guest clears them by writing 1, and writing 0 leaves them.
  space.setByte(0x07, 0xf9);
  write(space, 0x06, 2, 0x0000);
  assert.is(read(space, 0x06, 2), 0xf918);
  write(space, 0x06, 2, 0x8100); // clear detected parity error and master data parity error
  assert.is(read(space, 0x06, 2), 0x7818);
  write(space, 0x06, 2, 0xffff);
  assert.is(read(space, 0x06, 2), 0x0018);
  // A status write through a dword write at 0x04 does not disturb command, and vice versa.
  write(space, 0x04, 2, 0x0006);
  space.setByte(0x07, 0x20);
  write(space, 0x04, 4, 0x2000_0006);
  assert.is(read(space, 0x04, 4), 0x0018_0006);
  space.setInterruptStatus(false);
  assert.is(read(space, 0x06, 2), 0x0010);
});

test('32-bit memory BAR: sizing writes all ones, reads ~(size-1)|flags, restore', () => {
  const space = makeSpace();
  space.addBar({ index: 0, kind: 'memory32', size: 0x8000, address: 0xd000_0000 });
  space.addBar({ index: 1, kind: 'memory32', size: 0x1000, address: 0xd001_0000, prefetchable: true });
  assert.is(read(space, 0x10, 4), 0xd000_0000);
  assert.is(read(space, 0x14, 4), 0xd001_0008); // prefetchable bit 3, type 00
  write(space, 0x10, 4, 0xffff_ffff);
  assert.is(read(space, 0x10, 4), 0xffff_8000);
  write(space, 0x14, 4, 0xffff_ffff);
  assert.is(read(space, 0x14, 4), 0xffff_f008);
  write(space, 0x10, 4, 0xd000_0000);
  write(space, 0x14, 4, 0xd001_0000);
  assert.is(read(space, 0x10, 4), 0xd000_0000);
  assert.is(read(space, 0x14, 4), 0xd001_0008);
  // The flag bits are read-only; address bits below the size are hardwired 0.
  write(space, 0x10, 4, 0xe000_7fff);
  assert.is(read(space, 0x10, 4), 0xe000_0000);
});

test('64-bit memory BAR: both dwords size and restore', () => {
  const space = makeSpace();
  space.addBar({ index: 2, kind: 'memory64', size: 0x10_0000, address: 0x1_2340_0000 });
  assert.is(read(space, 0x18, 4), 0x2340_0004); // type 10 = 64-bit
  assert.is(read(space, 0x1c, 4), 0x0000_0001);
  write(space, 0x18, 4, 0xffff_ffff);
  write(space, 0x1c, 4, 0xffff_ffff);
  assert.is(read(space, 0x18, 4), 0xfff0_0004);
  assert.is(read(space, 0x1c, 4), 0xffff_ffff); // the size fits in the low dword: all high bits are address bits
  write(space, 0x18, 4, 0x2340_0000);
  write(space, 0x1c, 4, 0x0000_0001);
  assert.is(read(space, 0x18, 4), 0x2340_0004);
  assert.is(read(space, 0x1c, 4), 0x0000_0001);
  assert.equal(space.barPlacements(), [{ index: 2, kind: 'memory64', size: 0x10_0000, address: 0x1_2340_0000, decoding: false }]);
});

test('I/O BAR: sizing reads ~(size-1)|1 in the address bits', () => {
  const space = makeSpace();
  space.addBar({ index: 4, kind: 'io', size: 0x20, address: 0xc040 });
  assert.is(read(space, 0x20, 4), 0xc041);
  write(space, 0x20, 4, 0xffff_ffff);
  assert.is(read(space, 0x20, 4), 0xffff_ffe1); // bit 1 reserved, reads 0
  write(space, 0x20, 4, 0xc040);
  assert.is(read(space, 0x20, 4), 0xc041);
});

test('BAR declarations that cannot exist are refused', () => {
  const space = makeSpace();
  assert.throws(() => space.addBar({ index: 6, kind: 'memory32', size: 0x1000, address: 0 }));
  assert.throws(() => space.addBar({ index: 5, kind: 'memory64', size: 0x1000, address: 0 }));
  assert.throws(() => space.addBar({ index: 0, kind: 'memory32', size: 0x1800, address: 0 }));
  assert.throws(() => space.addBar({ index: 0, kind: 'memory32', size: 8, address: 0 }));
  assert.throws(() => space.addBar({ index: 0, kind: 'memory32', size: 0x1000, address: 0x800 }));
  space.addBar({ index: 0, kind: 'memory64', size: 0x1000, address: 0 });
  assert.throws(() => space.addBar({ index: 1, kind: 'memory32', size: 0x1000, address: 0 }));
});

test('barPlacements follows guest writes and the decode bits', () => {
  const space = makeSpace();
  space.addBar({ index: 0, kind: 'memory32', size: 0x8000, address: 0xd000_0000 });
  space.addBar({ index: 1, kind: 'io', size: 0x10, address: 0xc000 });
  assert.equal(space.barPlacements(), [
    { index: 0, kind: 'memory32', size: 0x8000, address: 0xd000_0000, decoding: false },
    { index: 1, kind: 'io', size: 0x10, address: 0xc000, decoding: false },
  ]);
  write(space, 0x04, 2, 0x0002); // memory decode only
  assert.equal(space.barPlacements().map((bar) => bar.decoding), [true, false]);
  write(space, 0x04, 2, 0x0001); // I/O decode only
  assert.equal(space.barPlacements().map((bar) => bar.decoding), [false, true]);
  write(space, 0x10, 4, 0xe000_8000);
  write(space, 0x14, 4, 0xd010);
  assert.equal(space.barPlacements().map((bar) => bar.address), [0xe000_8000, 0xd010]);
  // In the middle of a sizing probe the placement is the size mask (the caller stops decoding first).
  write(space, 0x10, 4, 0xffff_ffff);
  assert.is(space.barPlacements()[0].address, 0xffff_8000);
});

test('capabilities chain from 0x34 and set status bit 4', () => {
  const space = makeSpace();
  assert.is(read(space, 0x06, 2) & 0x10, 0);
  const first = space.addCapability(new Uint8Array([0x09, 0xee, 16, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  const second = space.addCapability(new Uint8Array([0x11, 0xee, 0, 0, 0, 0, 0, 0, 0, 0]));
  const third = space.addCapability(new Uint8Array([0x09, 0, 20, 2]));
  assert.is(read(space, 0x06, 2) & 0x10, 0x10);
  assert.ok(first >= 0x40, 'capabilities live after the 64-byte header');
  for (const at of [first, second, third]) assert.is(at & 3, 0, 'dword-aligned');
  assert.is(read(space, 0x34, 1), first);
  assert.is(read(space, first, 1), 0x09);
  assert.is(read(space, first + 1, 1), second); // next pointer, whatever the body said
  assert.is(read(space, second, 1), 0x11);
  assert.is(read(space, second + 1, 1), third);
  assert.is(read(space, third + 1, 1), 0); // end of list
  assert.is(read(space, first + 2, 1), 16);
  assert.ok(second >= first + 16 && third >= second + 10, 'capabilities do not overlap');
  // The list and its bodies are read-only unless a mask says otherwise.
  write(space, 0x34, 1, 0x80);
  write(space, first, 4, 0xffff_ffff);
  assert.is(read(space, 0x34, 1), first);
  assert.is(read(space, first, 4), (0x0110_0009 | (second << 8)) >>> 0);
});

test('a capability mask makes only its bytes writable', () => {
  const space = makeSpace();
  const at = space.addCapability(new Uint8Array([0x11, 0, 0x03, 0x00]), new Uint8Array([0, 0, 0, 0xc0]));
  write(space, at, 4, 0xffff_ffff);
  assert.is(read(space, at + 2, 2), 0xc003);
  write(space, at + 3, 1, 0x00);
  assert.is(read(space, at + 2, 2), 0x0003);
});

test('a capability that does not fit below 0x100 is refused', () => {
  const space = makeSpace();
  space.addCapability(new Uint8Array(0xb0));
  assert.throws(() => space.addCapability(new Uint8Array(0x20)));
});

test('reads past the 4 KiB space return 0xff; writes there are ignored', () => {
  const space = makeSpace();
  assert.is(read(space, 0x1000, 4), 0xffff_ffff);
  assert.is(read(space, 0xffe, 4), 0xffff_0000); // the two bytes inside read as they are
  write(space, 0x1000, 4, 0);
  assert.is(read(space, 0x1000, 4), 0xffff_ffff);
  assert.is(read(space, -1, 1), 0xff);
  // Inside the space, registers nothing implements read 0.
  assert.is(read(space, 0x100, 4), 0);
});

test('byte and word accesses read and write the addressed bytes of a dword', () => {
  const space = makeSpace();
  space.addBar({ index: 0, kind: 'memory32', size: 0x1000, address: 0xd000_0000 });
  write(space, 0x13, 1, 0xe0);
  assert.is(read(space, 0x10, 4), 0xe000_0000);
  write(space, 0x11, 1, 0x50); // bits 15:12 are address bits for a 4 KiB BAR, 11:8 are not
  assert.is(read(space, 0x10, 4), 0xe000_5000);
  write(space, 0x12, 2, 0x1234);
  assert.is(read(space, 0x10, 4), 0x1234_5000);
  assert.is(read(space, 0x12, 2), 0x1234);
  assert.is(read(space, 0x11, 1), 0x50);
  write(space, 0x0c, 1, 0x10); // cache line size: RW scratch
  assert.is(read(space, 0x0c, 4), 0x0000_0010);
});

test.run();

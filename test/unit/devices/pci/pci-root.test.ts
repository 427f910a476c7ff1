import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PciConfigSpace, PciFunction } from '../../../../src/devices/pci/config-space';
import { PciRoot } from '../../../../src/devices/pci/pci-root';

// Configuration mechanism #1 (PCI Local Bus 3.0, 3.2.2.3.2): CONFIG_ADDRESS at 0xcf8 (offset 0 of the
// root), CONFIG_DATA at 0xcfc (offset 4). CONFIG_ADDRESS: bit 31 enable, 30:24 reserved (read 0),
// 23:16 bus, 15:11 device, 10:8 function, 7:2 register, 1:0 read 0.

const DATA = 4;

function address(bus: number, device: number, fn: number, register: number, enable = true): number {
  return ((enable ? 0x8000_0000 : 0) | (bus << 16) | (device << 11) | (fn << 8) | (register & 0xfc)) >>> 0;
}

function io(root: PciRoot) {
  return {
    read(offset: number, width: number): number {
      const data = new Uint8Array(width);
      root.read(offset, data);
      let value = 0;
      for (let i = width - 1; i >= 0; i--) value = value * 256 + data[i];
      return value;
    },
    write(offset: number, width: number, value: number): void {
      const data = new Uint8Array(width);
      for (let i = 0; i < width; i++) data[i] = (value >>> (8 * i)) & 0xff;
      root.write(offset, data);
    },
  };
}

class TestFunction implements PciFunction {
  readonly config = new PciConfigSpace({ vendorId: 0x1af4, deviceId: 0x1044, classCode: 0x08, subclass: 0x80, revision: 1 });
  readonly written: [number, number][] = [];
  constructor(readonly name = 'test') {
    this.config.setInterrupt(10, 1);
  }
  configWritten(offset: number, length: number): void {
    this.written.push([offset, length]);
  }
  barRegion(): undefined {
    return undefined;
  }
}

function makeRoot() {
  const calls: [number, string, number][] = [];
  const root = new PciRoot((slot, fn, offset) => calls.push([slot, fn.name, offset]));
  const fn = new TestFunction('dev3');
  root.attach(3, fn);
  return { root, fn, calls, port: io(root) };
}

test('CONFIG_ADDRESS reads back a dword write; bits 1:0 and 30:24 read 0', () => {
  const { port } = makeRoot();
  assert.is(port.read(0, 4), 0);
  port.write(0, 4, 0x8000_0000); // Linux's pci_check_type1 probe
  assert.is(port.read(0, 4), 0x8000_0000);
  port.write(0, 4, 0x80ff_fffc);
  assert.is(port.read(0, 4), 0x80ff_fffc);
  port.write(0, 4, 0xffff_ffff);
  assert.is(port.read(0, 4), 0x80ff_fffc);
  port.write(0, 4, 0x0000_1803);
  assert.is(port.read(0, 4), 0x0000_1800);
});

test('CONFIG_ADDRESS: a byte or word write does not change it (3.2.2.3.2: only full dword accesses latch)', () => {
  // "Any other types of accesses to this address (non-DWORD) have no effect on CONFIG_ADDRESS";
  // QEMU's pci_host_config_write also ignores them (crosvm merges them).
  const { port } = makeRoot();
  port.write(0, 4, address(0, 3, 0, 0x10));
  port.write(3, 1, 0x01); // Linux's pci_check_type1 writes 0x01 to 0xcfb first
  port.write(0, 2, 0x0000);
  assert.is(port.read(0, 4), address(0, 3, 0, 0x10), 'non-dword writes to 0xcf8 must leave CONFIG_ADDRESS alone');
});

test('CONFIG_DATA: byte, word and dword at 0xcfc+k are bytes k.. of the selected dword', () => {
  const { port } = makeRoot();
  port.write(0, 4, address(0, 3, 0, 0x00));
  assert.is(port.read(DATA, 4), 0x1044_1af4);
  assert.is(port.read(DATA + 0, 2), 0x1af4);
  assert.is(port.read(DATA + 2, 2), 0x1044);
  assert.is(port.read(DATA + 0, 1), 0xf4);
  assert.is(port.read(DATA + 1, 1), 0x1a);
  assert.is(port.read(DATA + 2, 1), 0x44);
  assert.is(port.read(DATA + 3, 1), 0x10);
  port.write(0, 4, address(0, 3, 0, 0x08));
  assert.is(port.read(DATA + 3, 1), 0x08); // base class
  port.write(0, 4, address(0, 3, 0, 0x3c));
  assert.is(port.read(DATA + 1, 1), 1); // interrupt pin
  port.write(DATA + 0, 1, 0x0b); // interrupt line
  assert.is(port.read(DATA, 4) & 0xffff, 0x010b);
  port.write(0, 4, address(0, 3, 0, 0x04));
  port.write(DATA + 0, 2, 0x0006);
  assert.is(port.read(DATA, 2), 0x0006);
  port.write(DATA + 1, 1, 0x04); // INTx disable, in the command's high byte
  assert.is(port.read(DATA, 2), 0x0406);
});

test('the register number in CONFIG_ADDRESS reaches all 256 bytes of the space', () => {
  const { root, fn, port } = makeRoot();
  fn.config.setByte(0xfc, 0x5a);
  port.write(0, 4, address(0, 3, 0, 0xfc));
  assert.is(port.read(DATA, 1), 0x5a);
  assert.is(root.functionAt(3), fn);
});

test('absent slots, other buses, functions other than 0 and a clear enable bit read all ones and ignore writes', () => {
  const { port, fn, calls } = makeRoot();
  const cases = [
    address(0, 7, 0, 0x00), // empty slot
    address(1, 3, 0, 0x00), // bus 1
    address(0, 3, 1, 0x00), // function 1
    address(0, 3, 7, 0x00),
    address(0, 3, 0, 0x00, false), // enable clear
  ];
  for (const select of cases) {
    port.write(0, 4, select);
    assert.is(port.read(DATA, 4), 0xffff_ffff, `0x${select.toString(16)} dword`);
    assert.is(port.read(DATA + 2, 2), 0xffff);
    assert.is(port.read(DATA + 3, 1), 0xff);
  }
  // Writes through the same selections reach nothing: slot 3's interrupt line stays.
  for (const select of cases) {
    port.write(0, 4, (select & ~0xfc) | 0x3c);
    port.write(DATA, 1, 0x55);
  }
  port.write(0, 4, address(0, 3, 0, 0x3c));
  assert.is(port.read(DATA, 1), 10);
  assert.equal(calls, []);
  assert.equal(fn.written, []);
});

test('accesses that cross the CONFIG_DATA dword are ignored', () => {
  const { port, calls } = makeRoot();
  port.write(0, 4, address(0, 3, 0, 0x3c));
  assert.is(port.read(DATA + 3, 2), 0xffff);
  assert.is(port.read(DATA + 1, 4), 0xffff_ffff);
  port.write(DATA + 3, 2, 0x0000);
  port.write(DATA + 2, 4, 0x0000_0000);
  assert.is(port.read(DATA, 4) & 0xff, 10);
  assert.equal(calls, []);
});

test('the host bridge at 00:00.0 is an Intel 82441 (8086:1237), class 06/00, header type 0', () => {
  const { port } = makeRoot();
  port.write(0, 4, address(0, 0, 0, 0x00));
  assert.is(port.read(DATA, 4), 0x1237_8086);
  port.write(0, 4, address(0, 0, 0, 0x08));
  assert.is(port.read(DATA, 4) >>> 16, 0x0600);
  port.write(0, 4, address(0, 0, 0, 0x0c));
  assert.is((port.read(DATA, 4) >>> 16) & 0x7f, 0);
  for (let bar = 0; bar < 6; bar++) {
    port.write(0, 4, address(0, 0, 0, 0x10 + 4 * bar));
    port.write(DATA, 4, 0xffff_ffff);
    assert.is(port.read(DATA, 4), 0, `host bridge BAR${bar} is not implemented`);
  }
});

test('a Linux-style bus scan finds exactly the attached slots', () => {
  const { root, port } = makeRoot();
  root.attach(31, new TestFunction('dev31'));
  const found = [];
  for (let device = 0; device < 32; device++) {
    port.write(0, 4, address(0, device, 0, 0));
    if ((port.read(DATA, 4) & 0xffff) !== 0xffff) found.push(device);
  }
  assert.equal(found, [0, 3, 31]);
});

test('onConfigWrite and configWritten hear of every write that reached a function, with slot and register', () => {
  const { port, calls, fn } = makeRoot();
  port.write(0, 4, address(0, 3, 0, 0x04));
  port.write(DATA, 2, 0x0002);
  port.write(DATA + 2, 1, 0xff);
  port.write(0, 4, address(0, 3, 0, 0x10));
  port.write(DATA, 4, 0xffff_ffff);
  port.write(0, 4, address(0, 0, 0, 0x04));
  port.write(DATA, 2, 0x0006);
  assert.equal(calls, [[3, 'dev3', 0x04], [3, 'dev3', 0x06], [3, 'dev3', 0x10], [0, 'host-bridge', 0x04]]);
  assert.equal(fn.written, [[0x04, 2], [0x06, 1], [0x10, 4]]);
  // Reads notify nobody.
  port.read(DATA, 4);
  assert.is(calls.length, 4);
});

test('snapshot/restore: the CONFIG_ADDRESS latch and the chipset functions\' registers come back; a device with its own state is left to it', () => {
  const stateful = Object.assign(new TestFunction('stateful'), { snapshot: () => ({}), restore: () => {} });
  const a = new PciRoot();
  a.attach(1, new TestFunction('isa'));
  a.attach(2, stateful);
  const pa = io(a);
  pa.write(0, 4, address(0, 0, 0, 0x58));
  pa.write(DATA, 4, 0x3311_2200); // host bridge registers 0x58-0x5b (PAM0 and PAM1 among them)
  pa.write(0, 4, address(0, 1, 0, 0x60));
  pa.write(DATA, 4, 0x0b0a_8005); // the ISA function's registers past the header (TestFunction: read-only, kept anyway)
  pa.write(0, 4, address(0, 2, 0, 0x3c)); // the latch the guest left, about to read INTx line/pin
  const saved = JSON.parse(JSON.stringify(a.snapshot()));
  assert.is(saved.chipsetConfig.length, 2, 'the host bridge and the ISA function; not the stateful one');

  const b = new PciRoot();
  b.attach(1, new TestFunction('isa'));
  b.attach(2, Object.assign(new TestFunction('stateful'), { snapshot: () => ({}), restore: () => {} }));
  b.restore(saved);
  const pb = io(b);
  assert.is(pb.read(0, 4), address(0, 2, 0, 0x3c), 'CONFIG_ADDRESS as the guest left it');
  assert.is(pb.read(DATA, 4), pa.read(DATA, 4), 'so the access after the restore reaches the same register');
  pb.write(0, 4, address(0, 0, 0, 0x58));
  assert.is(pb.read(DATA, 4), 0x3311_2200);
  assert.equal(b.pamSegments(), a.pamSegments());
});

test('restore refuses a state for other chipset functions or with a bad latch, naming the field, and changes nothing', () => {
  const a = new PciRoot();
  const saved = a.snapshot();
  const b = new PciRoot();
  b.attach(1, new TestFunction('isa'));
  io(b).write(0, 4, address(0, 1, 0, 0));
  assert.throws(() => b.restore(saved), /chipsetConfig has 1 entry, not 2.*\(host-bridge, isa\)/);
  assert.throws(() => a.restore({ ...saved, configAddress: 0x4000_0000 }), /configAddress is 1073741824, not a value within the bits 0x80fffffc/);
  assert.is(io(b).read(0, 4), address(0, 1, 0, 0), 'the refused restore left the latch alone');
});

test('attach refuses slot 0, slots past 31 and a taken slot', () => {
  const { root } = makeRoot();
  assert.throws(() => root.attach(0, new TestFunction()), RangeError);
  assert.throws(() => root.attach(32, new TestFunction()), RangeError);
  assert.throws(() => root.attach(3, new TestFunction()), RangeError);
});

test.run();

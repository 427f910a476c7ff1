import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Piix3IsaBridge, ResetControl } from '../../../../src/devices/pci/piix3';
import { PciRoot } from '../../../../src/devices/pci/pci-root';

const u32 = (value: number) => new Uint8Array([value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24]);
const address = (device: number, register: number) => (0x8000_0000 | (device << 11) | register) >>> 0;

function rootWithBridge() {
  let resets = 0;
  const root = new PciRoot(() => {}, new ResetControl(() => resets++));
  root.attach(1, new Piix3IsaBridge());
  const configRead = (device: number, register: number, width: number) => {
    root.write(0, u32(address(device, register & 0xfc)));
    const data = new Uint8Array(width);
    root.read(4 + (register & 3), data);
    return data.reduceRight((value, byte) => value * 256 + byte, 0);
  };
  const configWrite = (device: number, register: number, bytes: number[]) => {
    root.write(0, u32(address(device, register & 0xfc)));
    root.write(4 + (register & 3), Uint8Array.from(bytes));
  };
  return { root, configRead, configWrite, resets: () => resets };
}

test('00:01.0 is the PIIX3 ISA bridge QEMU -M pc has: 8086:7000, class 06/01, multi-function header, PIRQs not routed', () => {
  const { configRead } = rootWithBridge();
  assert.is(configRead(1, 0x00, 4), 0x7000_8086);
  assert.is(configRead(1, 0x0a, 2), 0x0601);
  assert.is(configRead(1, 0x0e, 1), 0x80); // SeaBIOS and Linux then probe 01.1-01.7, which read all ones
  assert.is(configRead(1, 0x60, 4), 0x8080_8080);
});

test('SeaBIOS piix_isa_bridge_setup: the PIRQ routes and other chipset registers read back what was written', () => {
  const { configRead, configWrite } = rootWithBridge();
  configWrite(1, 0x60, [10, 10, 11, 11]);
  assert.is(configRead(1, 0x60, 4), 0x0b0b_0a0a);
  configWrite(1, 0x82, [0x02]);
  assert.is(configRead(1, 0x82, 1), 0x02);
  configWrite(1, 0x00, [0, 0, 0, 0]); // the ids stay read-only
  assert.is(configRead(1, 0x00, 4), 0x7000_8086);
});

test('the host bridge\'s PAM registers (0x59-0x5f) are writable, as SeaBIOS\'s make_bios_writable/readonly need', () => {
  const { configRead, configWrite } = rootWithBridge();
  assert.is(configRead(0, 0x59, 1), 0x00); // at reset: all ROM, which tells SeaBIOS to copy itself
  configWrite(0, 0x58, [0x00, 0x30, 0x33, 0x33]);
  configWrite(0, 0x5c, [0x33, 0x33, 0x33, 0x33]);
  assert.is(configRead(0, 0x59, 1), 0x30);
  assert.is(configRead(0, 0x5c, 4), 0x3333_3333);
  assert.is(configRead(0, 0x00, 4), 0x1237_8086);
});

test('port 0xcf9: a byte access is the reset control register (bit 2 resets); a dword at 0xcf8 is still CONFIG_ADDRESS', () => {
  const { root, resets } = rootWithBridge();
  root.write(1, Uint8Array.of(0x02)); // SeaBIOS's reset(): 0x02, then 0x06
  assert.is(resets(), 0);
  const byte = new Uint8Array(1);
  root.read(1, byte);
  assert.is(byte[0], 0x02);
  root.write(1, Uint8Array.of(0x06));
  assert.is(resets(), 1);
  root.write(0, u32(address(1, 0)));
  const dword = new Uint8Array(4);
  root.read(0, dword);
  assert.equal([...dword], [...u32(address(1, 0))]);
  assert.is(resets(), 1);
});

test('without a reset control, a byte at 0xcf9 is an odd CONFIG_ADDRESS access, as before', () => {
  const root = new PciRoot();
  root.write(1, Uint8Array.of(0x06));
  assert.is(root.oddAccesses, 1);
});

test('pamSegments decodes the i440FX PAM registers: 0xf0000 from PAM0 bits 5:4, 16 KiB segments from 0xc0000 in PAM1-6', () => {
  const { root, configWrite } = rootWithBridge();
  const writable = () => root.pamSegments().filter((s) => s.writable).map((s) => s.base.toString(16));
  assert.is(root.pamSegments().length, 13);
  assert.equal(writable(), [], 'at reset every segment is ROM');
  configWrite(0, 0x59, [0x30]); // 0xf0000: read and write RAM
  assert.equal(root.pamSegments()[0], { base: 0xf_0000, size: 0x1_0000, writable: true });
  configWrite(0, 0x5a, [0x21]); // 0xc0000 read-only, 0xc4000 write-only
  assert.equal(writable(), ['f0000', 'c4000']);
  configWrite(0, 0x59, [0x10]); // SeaBIOS's make_bios_readonly: read RAM, writes to ROM
  assert.equal(writable(), ['c4000']);
  assert.ok(PciRoot.touchesPam(0x58) && PciRoot.touchesPam(0x5c) && !PciRoot.touchesPam(0x60) && !PciRoot.touchesPam(0x54));
});

test.run();

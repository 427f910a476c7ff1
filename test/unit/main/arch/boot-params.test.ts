import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { BootParamsError, writeBootParams } from '../../../../src/main/arch/boot-params';
import { loadBzImage } from '../../../../src/main/arch/bzimage';
import { fakeBzImage } from '../../../fixtures/fake-bzimage';

// Offsets below are typed from Documentation/arch/x86/boot.rst and zero-page.rst.
const ZERO_PAGE = 0x7000;
const MIB = 1024 * 1024;

const E820 = [
  { address: 0, size: 0x9fc00, type: 1 },
  { address: 0x100000, size: 0x7f00000, type: 1 },
  { address: 0xfffbc000, size: 0x4000, type: 2 },
  { address: 0x100000000, size: 0x30000000, type: 1 },
];

/** Guest memory whose zero page is full of junk, to prove every untouched byte is cleared. */
function dirtyMemory(): GuestMemory {
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 2 * MIB }]);
  mem.fill(ZERO_PAGE, 0x1000, 0xa5);
  return mem;
}

const u8 = (mem: GuestMemory, offset: number): number => mem.readU8(ZERO_PAGE + offset);
const u16 = (mem: GuestMemory, offset: number): number => mem.readU16(ZERO_PAGE + offset);
const u32 = (mem: GuestMemory, offset: number): number => mem.readU32(ZERO_PAGE + offset);
const u64 = (mem: GuestMemory, offset: number): bigint => mem.readU64(ZERO_PAGE + offset);

test('an ELF boot (no bzImage header) gets every field a loader must write', () => {
  const mem = dirtyMemory();
  writeBootParams(mem, {
    commandLine: { address: 0x20000, length: 38 },
    initrd: { address: 0x7eff000, size: 0x100001 },
    setupData: 0x10000,
    e820: E820,
  });
  assert.is(u16(mem, 0x1fe), 0xaa55, 'boot_flag');
  assert.is(u32(mem, 0x202), 0x53726448, 'header "HdrS"');
  assert.is(u16(mem, 0x206), 0x020f, 'version 2.15 when no image gives one');
  assert.is(u8(mem, 0x210), 0xff, 'type_of_loader: undefined');
  assert.is(u8(mem, 0x211), 0x01, 'loadflags: LOADED_HIGH');
  assert.is(u16(mem, 0x1fa), 0xffff, 'vid_mode: normal');
  assert.is(u32(mem, 0x228), 0x20000, 'cmd_line_ptr');
  assert.is(u32(mem, 0x0c8), 0, 'ext_cmd_line_ptr');
  assert.is(u32(mem, 0x238), 38, 'cmdline_size');
  assert.is(u32(mem, 0x230), 0x1000000, 'kernel_alignment');
  assert.is(u32(mem, 0x218), 0x7eff000, 'ramdisk_image');
  assert.is(u32(mem, 0x21c), 0x100001, 'ramdisk_size');
  assert.is(u32(mem, 0x0c0), 0, 'ext_ramdisk_image');
  assert.is(u32(mem, 0x0c4), 0, 'ext_ramdisk_size');
  assert.is(u64(mem, 0x250), 0x10000n, 'setup_data');
  assert.is(u8(mem, 0x1ef), 0, 'sentinel stays 0');
  assert.is(u8(mem, 0x1f1), 0, 'setup_sects is not invented');
  assert.is(u8(mem, 0x000), 0, 'screen_info is cleared');
  assert.is(u8(mem, 0xfff), 0, 'the last byte of the page is cleared');
});

test('the e820 table: count at 0x1e8, packed 20-byte entries from 0x2d0', () => {
  const mem = dirtyMemory();
  writeBootParams(mem, { commandLine: { address: 0x20000, length: 0 }, e820: E820 });
  assert.is(u8(mem, 0x1e8), 4);
  const entry = (i: number) => [u64(mem, 0x2d0 + 20 * i), u64(mem, 0x2d0 + 20 * i + 8), u32(mem, 0x2d0 + 20 * i + 16)];
  assert.equal(entry(0), [0n, 0x9fc00n, 1]);
  assert.equal(entry(1), [0x100000n, 0x7f00000n, 1]);
  assert.equal(entry(2), [0xfffbc000n, 0x4000n, 2]);
  assert.equal(entry(3), [0x100000000n, 0x30000000n, 1]);
  assert.is(u32(mem, 0x2d0 + 20 * 4), 0, 'nothing after the last entry');
});

test('addresses and sizes above 4 GiB carry their high halves in the ext_* fields', () => {
  const mem = dirtyMemory();
  writeBootParams(mem, {
    commandLine: { address: 0x2_0000_1000, length: 10 },
    initrd: { address: 0x1_2345_6000, size: 0x1_0000_2000 },
    e820: E820,
  });
  assert.is(u32(mem, 0x228), 0x1000);
  assert.is(u32(mem, 0x0c8), 2);
  assert.is(u32(mem, 0x218), 0x2345_6000);
  assert.is(u32(mem, 0x0c0), 1);
  assert.is(u32(mem, 0x21c), 0x2000);
  assert.is(u32(mem, 0x0c4), 1);
  assert.is(u64(mem, 0x250), 0n, 'no setup_data');
});

test("a bzImage's header is copied to 0x1f1 first, then the loader's fields overwrite it", () => {
  const image = fakeBzImage({ setupSects: 0x1b, version: 0x020c, loadflags: 0x21, cmdlineSize: 2047, initSize: 0x345000, kernelAlignment: 0x200000 });
  new DataView(image.buffer).setUint32(0x26c, 0xdeadbeef, true); // past the header end: must not be copied
  const { setupHeaderBytes } = loadBzImage(image, GuestMemory.allocate([{ guestAddress: 0, size: 32 * MIB }]));
  const mem = dirtyMemory();
  writeBootParams(mem, { setupHeader: setupHeaderBytes, commandLine: { address: 0x20000, length: 100 }, e820: E820 });
  assert.is(u8(mem, 0x1f1), 0x1b, 'setup_sects from the image');
  assert.is(u32(mem, 0x1f4), 0x2000 / 16, 'syssize from the image');
  assert.is(u16(mem, 0x200), 0x6aeb, 'jump from the image');
  assert.is(u16(mem, 0x206), 0x020c, "the image's protocol version is kept");
  assert.is(u32(mem, 0x214), 0x100000, 'code32_start from the image');
  assert.is(u32(mem, 0x22c), 0x7fffffff, 'initrd_addr_max from the image');
  assert.is(u8(mem, 0x234), 1, 'relocatable_kernel from the image');
  assert.is(u16(mem, 0x236), 0x0003, 'xloadflags from the image');
  assert.is(u32(mem, 0x260), 0x345000, 'init_size from the image');
  assert.is(u32(mem, 0x264), 0x190, 'handover_offset from the image');
  assert.is(u8(mem, 0x211), 0x21, 'loadflags keep the image bits and LOADED_HIGH');
  assert.is(u8(mem, 0x210), 0xff);
  assert.is(u32(mem, 0x230), 0x1000000, 'kernel_alignment overwritten');
  assert.is(u32(mem, 0x238), 2047, "cmdline_size: the image's own limit is kept");
  assert.is(u32(mem, 0x26c), 0, 'nothing past the header end 0x26c');
  assert.is(u8(mem, 0x1f0), 0, 'nothing before 0x1f1');
});

test('an e820 table over 128 entries or empty is refused', () => {
  const many = Array.from({ length: 129 }, (_, i) => ({ address: i * 0x2000, size: 0x1000, type: 1 }));
  assert.throws(() => writeBootParams(dirtyMemory(), { commandLine: { address: 0x20000, length: 1 }, e820: many }), (error: Error) => error instanceof BootParamsError);
  assert.throws(() => writeBootParams(dirtyMemory(), { commandLine: { address: 0x20000, length: 1 }, e820: [] }), (error: Error) => error instanceof BootParamsError);
  const mem = dirtyMemory();
  writeBootParams(mem, { commandLine: { address: 0x20000, length: 1 }, e820: many.slice(0, 128) });
  assert.is(u8(mem, 0x1e8), 128);
  assert.is(u32(mem, 0x2d0 + 127 * 20 + 16), 1, 'the 128th entry ends at 0xcd0, inside the table');
});

test('a setup header longer than the space before 0x290 is refused', () => {
  assert.throws(
    () => writeBootParams(dirtyMemory(), { setupHeader: new Uint8Array(0x290 - 0x1f1 + 1), commandLine: { address: 0x20000, length: 1 }, e820: E820 }),
    (error: Error) => error instanceof BootParamsError,
  );
});

test('a guest without RAM at the zero page is refused', () => {
  const mem = GuestMemory.allocate([{ guestAddress: 0x100000, size: MIB }]);
  assert.throws(() => writeBootParams(mem, { commandLine: { address: 0x20000, length: 1 }, e820: E820 }), (error: Error) => error instanceof BootParamsError);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { BzImageError, loadBzImage, parseBzImage } from '../../../../src/main/arch/bzimage';
import { fakeBzImage, payloadByte } from '../../../fixtures/fake-bzimage';

const MIB = 1024 * 1024;

test('parseBzImage reads the header fields at the offsets boot.rst gives', () => {
  const header = parseBzImage(fakeBzImage({ setupSects: 6, payloadBytes: 0x3000, cmdlineSize: 4095, initrdAddrMax: 0x37ffffff, initSize: 0x345000 }));
  assert.equal(header, {
    setupSects: 6,
    setupBytes: 7 * 512,
    syssize: 0x300,
    protectedModeBytes: 0x3000,
    version: 0x020f,
    loadflags: 0x01,
    kernelAlignment: 0x200000,
    relocatable: true,
    minAlignment: 0x15,
    xloadflags: 0x0003,
    cmdlineSize: 4095,
    initrdAddrMax: 0x37ffffff,
    prefAddress: 0x1000000,
    initSize: 0x345000,
    handoverOffset: 0x190,
    kernelInfoOffset: 0,
    headerEnd: 0x26c,
  });
});

test('setup_sects 0 means 4 sectors of setup, so the kernel starts at 5 * 512', () => {
  const header = parseBzImage(fakeBzImage({ setupSects: 0 }));
  assert.is(header.setupSects, 4);
  assert.is(header.setupBytes, 2560);
});

test('fields newer than the protocol version read as 0: kernel_info_offset needs 2.15', () => {
  const image = fakeBzImage({ version: 0x020c });
  new DataView(image.buffer).setUint32(0x268, 0x1234, true);
  const header = parseBzImage(image);
  assert.is(header.kernelInfoOffset, 0);
  assert.is(header.prefAddress, 0x1000000, 'pref_address (2.10) is read at 2.12');
  assert.is(parseBzImage(fakeBzImage({ version: 0x020f })).kernelInfoOffset, 0);
});

const rejects: Array<[string, Uint8Array, RegExp]> = [
  ['a file smaller than two sectors', new Uint8Array(1023), /1023 bytes, too small/],
  ['a boot_flag other than 0xaa55', fakeBzImage({ bootFlag: 0x1234 }), /boot_flag at 0x1fe is 0x1234/],
  ['missing "HdrS" magic', fakeBzImage({ magic: 0x53726449 }), /no "HdrS" magic at 0x202/],
  ['protocol 2.05', fakeBzImage({ version: 0x0205 }), /protocol 2\.05, older than the 2\.06/],
  ['a kernel without XLF_KERNEL_64', fakeBzImage({ xloadflags: 0x0002 }), /no 64-bit entry point/],
  ['protocol 2.11, which has no xloadflags', fakeBzImage({ version: 0x020b }), /no 64-bit entry point.*2\.11/],
  ['a zImage (LOADED_HIGH clear)', fakeBzImage({ loadflags: 0x00 }), /LOADED_HIGH is clear/],
  ['a backward jump at 0x200', fakeBzImage({ jumpOffset: 0x90 }), /not a forward short jmp/],
  ['a file that ends before the 64-bit entry', fakeBzImage().subarray(0, 5 * 512 + 0x200), /3072 bytes .* promises 2560 bytes of setup and 8192 of kernel \(10752\); the file is truncated/],
  ['a file that ends in its setup', fakeBzImage().subarray(0, 5 * 512 - 1), /2559 bytes .* the file is truncated/],
];
for (const [what, image, message] of rejects) {
  test(`parseBzImage rejects ${what}`, () => {
    assert.throws(() => parseBzImage(image), (error: Error) => error instanceof BzImageError && message.test(error.message));
  });
}

test('loadBzImage puts a relocatable kernel at 1 MiB, entry at +0x200, and reserves its init_size window at 16 MiB', () => {
  const image = fakeBzImage({ payloadBytes: 0x2000, initSize: 0x200000 });
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 32 * MIB }]);
  const loaded = loadBzImage(image, mem);
  assert.is(loaded.kernelStart, 0x100000);
  assert.is(loaded.entry64, 0x100200);
  // runs at max(align_up(1 MiB, 16 MiB), pref_address 16 MiB) = 0x1000000, needs 2 MiB from there
  assert.is(loaded.kernelEnd, 0x1200000);
  assert.is(mem.readU8(0x100000), payloadByte(0));
  assert.is(mem.readU8(0x100000 + 0x1fff), payloadByte(0x1fff));
  assert.is(mem.readU8(0x100000 + 0x2000), 0, 'nothing is written past the protected-mode part');
  assert.is(mem.readU8(0xfffff), 0, 'the real-mode part is not loaded');
});

test('loadBzImage copies the setup header from 0x1f1 to 0x202 + the jump offset', () => {
  const image = fakeBzImage({ setupSects: 0x1b, jumpOffset: 0x6a });
  const loaded = loadBzImage(image, GuestMemory.allocate([{ guestAddress: 0, size: 32 * MIB }]));
  assert.is(loaded.setupHeaderBytes.length, 0x26c - 0x1f1);
  assert.is(loaded.setupHeaderBytes[0], 0x1b);
  assert.equal(Array.from(loaded.setupHeaderBytes.subarray(0x202 - 0x1f1, 0x206 - 0x1f1)), [0x48, 0x64, 0x72, 0x53]);
  assert.is(loaded.header.setupSects, 0x1b);
});

test('a kernel that is not relocatable is loaded at its pref_address', () => {
  const image = fakeBzImage({ relocatable: false, prefAddress: 0x2000000, initSize: 0x400000 });
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 64 * MIB }]);
  const loaded = loadBzImage(image, mem);
  assert.is(loaded.kernelStart, 0x2000000);
  assert.is(loaded.entry64, 0x2000200);
  assert.is(loaded.kernelEnd, 0x2400000);
  assert.is(mem.readU8(0x2000000 + 5), payloadByte(5));
  assert.is(mem.readU8(0x100000), 0);
});

test('a kernel whose init_size window ends past RAM is refused with the memory it needs', () => {
  const image = fakeBzImage({ initSize: 0x200000 });
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 16 * MIB }]);
  assert.throws(
    () => loadBzImage(image, mem),
    (error: Error) => error instanceof BzImageError && /0x100000\.\.0x1200000 .* RAM there ends at 0x1000000; give the guest more memory \(--mem\)/.test(error.message),
  );
});

test('a kernel reaching into the 32-bit MMIO gap is refused', () => {
  const image = fakeBzImage({ relocatable: false, prefAddress: 0xcff00000, initSize: 0x200000 });
  // the gap is checked before RAM, so a small guest shows it without allocating 3.25 GiB
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 16 * MIB }]);
  assert.throws(() => loadBzImage(image, mem), (error: Error) => error instanceof BzImageError && /0xcff00000\.\.0xd0100000.*gap at 0xd0000000/.test(error.message));
});

test('a file 8 bytes shorter than syssize promises (memtest86+ 6.10) loads what is there, the rest zeroed', () => {
  const image = fakeBzImage().subarray(0, 5 * 512 + 0x2000 - 8);
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 64 * MIB }]);
  mem.fill(0x100000, 0x2000, 0xaa);
  const loaded = loadBzImage(image, mem);
  assert.is(loaded.kernelStart, 0x100000);
  assert.is(loaded.header.protectedModeBytes, 0x2000);
  assert.is(mem.readU8(0x100000 + 0x2000 - 9), payloadByte(0x2000 - 9), 'the last byte the file holds');
  assert.equal([...mem.read(0x100000 + 0x2000 - 8, 8)], new Array(8).fill(0), 'the promised bytes the file lacks are zero');
});

test('a kernel that is not relocatable and wants to load below 1 MiB (over the MP table at 0x9fc00) is refused', () => {
  const image = fakeBzImage({ relocatable: false, prefAddress: 0x90000, initSize: 0x10000, payloadBytes: 0x20000 });
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 64 * MIB }]);
  assert.throws(() => loadBzImage(image, mem), (error: Error) => error instanceof BzImageError && /pref_address 0x90000, below 0x100000.*MP table/.test(error.message));
  assert.is(mem.readU8(0x9fc00), 0, 'nothing written');
});

test.run();

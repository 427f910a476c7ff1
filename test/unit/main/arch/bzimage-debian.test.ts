// The loader against Debian's real kernel (downloaded once, ~70 MB; see
// test/fixtures/debian-kernel.ts). Passes with a note where apt-get is absent.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { loadBzImage, parseBzImage } from '../../../../src/main/arch/bzimage';
import { writeBootParams } from '../../../../src/main/arch/boot-params';
import { debianKernel } from '../../../fixtures/debian-kernel';

const MIB = 1024 * 1024;

test("Debian's vmlinuz parses, loads at 1 MiB into 256 MiB, and its vmlinux is ELF", async () => {
  const kernel = await debianKernel();
  if ('skip' in kernel) {
    console.log(`not checked: ${kernel.skip}`);
    return;
  }
  const image = new Uint8Array(fs.readFileSync(kernel.vmlinuz));
  const header = parseBzImage(image);
  assert.ok(header.version >= 0x0206, `protocol ${header.version.toString(16)}`);
  assert.is(header.xloadflags & 0x1, 0x1, 'XLF_KERNEL_64');
  assert.ok(header.relocatable);
  // boot.rst: the real-mode code is at most 32 KiB, i.e. up to 63 setup sectors after the boot sector
  assert.ok(header.setupSects >= 4 && header.setupSects <= 63, `setup_sects ${header.setupSects}`);
  // build.c pads the file to exactly setup + syssize paragraphs (the signed kernel appends its signature after)
  assert.ok(image.length >= header.setupBytes + header.syssize * 16);
  // Debian's x86_64 config: CONFIG_PHYSICAL_START 16 MiB, COMMAND_LINE_SIZE 2048
  assert.is(header.prefAddress, 0x1000000);
  assert.is(header.cmdlineSize, 2047);

  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 256 * MIB }]);
  const loaded = loadBzImage(image, mem);
  assert.is(loaded.kernelStart, 0x100000);
  assert.is(loaded.entry64, 0x100200);
  assert.is(loaded.kernelEnd, 0x1000000 + header.initSize, 'decompresses at 16 MiB and needs init_size from there');
  assert.equal(mem.read(0x100000, 512), image.subarray(header.setupBytes, header.setupBytes + 512));

  writeBootParams(mem, { setupHeader: loaded.setupHeaderBytes, commandLine: { address: 0x20000, length: 0 }, e820: [{ address: 0, size: 0x9fc00, type: 1 }] });
  assert.is(mem.readU16(0x7000 + 0x206), header.version);
  assert.is(mem.readU8(0x7000 + 0x1f1), image[0x1f1]);

  const elf = Buffer.alloc(4);
  const fd = fs.openSync(kernel.vmlinux, 'r');
  fs.readSync(fd, elf, 0, 4, 0);
  fs.closeSync(fd);
  assert.equal(Array.from(elf), [0x7f, 0x45, 0x4c, 0x46]);
  console.log(`Debian ${kernel.version}: protocol ${header.version.toString(16)}, setup_sects ${header.setupSects}, init_size ${header.initSize.toString(16)}`);
});

test.run();

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { ElfError, loadElf } from '../../../../src/main/arch/elf';
import { PT_LOAD, PT_NOTE, buildElf, buildElf32, concat, note, u32le } from '../../../fixtures/elf-image';

const MiB = 1024 * 1024;
/** XEN_ELFNOTE_PHYS32_ENTRY from xen/include/public/elfnote.h. */
const XEN_ELFNOTE_PHYS32_ENTRY = 18;
/** NT_GNU_BUILD_ID, a note every vmlinux carries before the Xen ones. */
const NT_GNU_BUILD_ID = 3;

function guestRam(): GuestMemory {
  const mem = GuestMemory.allocate([{ guestAddress: 0, size: 32 * MiB }]);
  mem.fill(0, 32 * MiB, 0xaa);
  return mem;
}

const TEXT = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
const DATA = Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0xca, 0xfe, 0xba, 0xbe]);

function stepOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof ElfError) return error.step;
    throw error;
  }
  throw new Error('expected an ElfError');
}

function kernel(overrides: Partial<Parameters<typeof buildElf>[0]> = {}): Uint8Array {
  return buildElf({
    entry: 0x100_0000,
    segments: [
      { type: PT_LOAD, paddr: 0x100_0000, data: TEXT, memsz: 0x40 },
      { type: PT_LOAD, paddr: 0x120_0000, data: DATA },
    ],
    ...overrides,
  });
}

test('loads PT_LOAD segments at p_paddr, zeroes the bss tail, reports the range', () => {
  const mem = guestRam();
  const result = loadElf(kernel(), mem);
  assert.equal(result, { elfClass: 64, entry: 0x100_0000, kernelStart: 0x100_0000, kernelEnd: 0x120_0008 });
  assert.equal([...mem.read(0x100_0000, 16)], [...TEXT]);
  assert.equal([...mem.read(0x100_0010, 0x30)], new Array(0x30).fill(0), 'p_memsz - p_filesz zeroed');
  assert.is(mem.readU8(0x100_0040), 0xaa, 'nothing written past p_memsz');
  assert.is(mem.readU8(0x0ff_ffff), 0xaa, 'nothing written before p_paddr');
  assert.equal([...mem.read(0x120_0000, 8)], [...DATA]);
});

test('finds the Xen PHYS32_ENTRY note after other notes in a PT_NOTE segment', () => {
  const notes = concat(
    note('GNU\0', NT_GNU_BUILD_ID, new Uint8Array(20).fill(7)),
    note('Linux\0', 1, u32le(0x12345)), // 6-byte name, padded to 8
    note('Xen\0', 6, u32le(0x55)), // another Xen note type, not the entry
    note('Xen\0', XEN_ELFNOTE_PHYS32_ENTRY, u32le(0x100_0123)),
  );
  const image = buildElf({
    entry: 0x100_0000,
    segments: [
      { type: PT_LOAD, paddr: 0x100_0000, data: TEXT },
      { type: PT_NOTE, data: notes },
    ],
  });
  assert.equal(loadElf(image, guestRam()), { elfClass: 64, entry: 0x100_0000, kernelStart: 0x100_0000, kernelEnd: 0x100_0010, pvhEntry: 0x100_0123 });
});

test('reads notes padded to 8 bytes when the PT_NOTE says p_align = 8', () => {
  const notes = concat(note('Linux\0', 1, u32le(1), 8), note('Xen\0', XEN_ELFNOTE_PHYS32_ENTRY, u32le(0x100_0456), 8));
  const image = buildElf({
    entry: 0x100_0000,
    segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT }, { type: PT_NOTE, data: notes, align: 8 }],
  });
  assert.is(loadElf(image, guestRam()).pvhEntry, 0x100_0456);
});

test('a truncated Xen note is an error, not a wrong entry', () => {
  const broken = note('Xen\0', XEN_ELFNOTE_PHYS32_ENTRY, u32le(0x100_0123)).subarray(0, 18);
  const image = buildElf({
    entry: 0x100_0000,
    segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT }, { type: PT_NOTE, data: broken }],
  });
  assert.is(stepOf(() => loadElf(image, guestRam())), 'pvh-note');
});

test('header errors: magic, class, endianness, machine, truncation', () => {
  const mem = guestRam();
  const good = kernel();
  const badMagic = Uint8Array.from(good);
  badMagic[1] = 0x45 + 1;
  assert.is(stepOf(() => loadElf(badMagic, mem)), 'magic');
  assert.is(stepOf(() => loadElf(new Uint8Array(2), mem)), 'magic');
  assert.is(stepOf(() => loadElf(kernel({ elfClass: 3 }), mem)), 'class');
  assert.is(stepOf(() => loadElf(kernel({ endianness: 2 }), mem)), 'endianness');
  assert.is(stepOf(() => loadElf(kernel({ machine: 3 /* EM_386 */ }), mem)), 'machine');
  assert.is(stepOf(() => loadElf(good.subarray(0, 40), mem)), 'header');
});

test('program headers outside the file', () => {
  const mem = guestRam();
  assert.is(stepOf(() => loadElf(kernel().subarray(0, 64 + 56 + 20), mem)), 'program-headers');
  assert.is(stepOf(() => loadElf(kernel({ phoff: 0x10_0000n }), mem)), 'program-headers');
  assert.is(stepOf(() => loadElf(kernel({ phentsize: 32 }), mem)), 'program-headers');
});

test('a segment whose bytes run past the end of the file', () => {
  const image = buildElf({ entry: 0x100_0000, segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT, filesz: 17, memsz: 32 }] });
  assert.is(stepOf(() => loadElf(image, guestRam())), 'segment-file');
});

test('a segment outside guest RAM', () => {
  const image = kernel({ segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT }, { type: PT_LOAD, paddr: 32 * MiB - 4, data: DATA }] });
  assert.is(stepOf(() => loadElf(image, guestRam())), 'segment-ram');
});

test('a segment over the boot tables below 1 MiB', () => {
  for (const paddr of [0x9000, 0x7000, 0x500, 0xf_fff0]) {
    const image = buildElf({ entry: 0x100_0000, segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT }, { type: PT_LOAD, paddr, data: DATA }] });
    assert.is(stepOf(() => loadElf(image, guestRam())), 'segment-boot-tables', `p_paddr ${paddr.toString(16)}`);
  }
});

test('an image without PT_LOAD', () => {
  const image = buildElf({ entry: 0x100_0000, segments: [{ type: PT_NOTE, data: note('Xen\0', XEN_ELFNOTE_PHYS32_ENTRY, u32le(0x100_0000)) }] });
  assert.is(stepOf(() => loadElf(image, guestRam())), 'no-load-segment');
});

test('an entry point outside every load segment (a virtual address)', () => {
  assert.is(stepOf(() => loadElf(kernel({ entry: 0xffff_ffff_8100_0000n }), guestRam())), 'entry');
});

test('a failed load writes nothing', () => {
  const mem = guestRam();
  const image = kernel({ segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT }, { type: PT_LOAD, paddr: 64 * MiB, data: DATA }] });
  assert.is(stepOf(() => loadElf(image, mem)), 'segment-ram');
  assert.is(mem.readU8(0x100_0000), 0xaa);
});

test('ElfError messages name the step', () => {
  try {
    loadElf(new Uint8Array(64), guestRam());
    assert.unreachable();
  } catch (error) {
    assert.instance(error, ElfError);
    assert.match((error as Error).message, /^ELF kernel \(magic\): .*vmlinux/);
  }
});

test('an ELF32 kernel with the PVH note loads (QEMU boots these with -kernel); its 32-bit fields are read', () => {
  const mem = guestRam();
  const image = buildElf32({
    entry: 0x100_0000,
    segments: [
      { type: PT_LOAD, paddr: 0x100_0000, data: TEXT, memsz: 0x40 },
      { type: PT_NOTE, data: concat(note('GNU\0', NT_GNU_BUILD_ID, new Uint8Array(20)), note('Xen\0', XEN_ELFNOTE_PHYS32_ENTRY, u32le(0x100_0004))) },
    ],
  });
  assert.equal(loadElf(image, mem), { elfClass: 32, entry: 0x100_0000, kernelStart: 0x100_0000, kernelEnd: 0x100_0040, pvhEntry: 0x100_0004 });
  assert.equal([...mem.read(0x100_0000, 16)], [...TEXT]);
  assert.equal([...mem.read(0x100_0010, 0x30)], new Array(0x30).fill(0), 'bss zeroed');
});

test('an ELF32 kernel without the PVH note is refused: it has no other way in', () => {
  const image = buildElf32({ entry: 0x100_0000, segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT }] });
  assert.is(stepOf(() => loadElf(image, guestRam())), 'elf32-without-pvh');
  assert.throws(() => loadElf(image, guestRam()), /32-bit ELF without a XEN_ELFNOTE_PHYS32_ENTRY note/);
});

test('an ELF32 kernel for another machine is refused', () => {
  const image = buildElf32({ entry: 0x100_0000, machine: 40 /* EM_ARM */, segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT }] });
  assert.is(stepOf(() => loadElf(image, guestRam())), 'machine');
});

test('a note with a 300 KB name is skipped without exhausting the stack', () => {
  const longName = 'N'.repeat(300_000);
  const notes = concat(note(longName, 1, u32le(1)), note('Xen\0', XEN_ELFNOTE_PHYS32_ENTRY, u32le(0x100_0008)));
  const image = buildElf({ entry: 0x100_0000, segments: [{ type: PT_LOAD, paddr: 0x100_0000, data: TEXT }, { type: PT_NOTE, data: notes }] });
  assert.is(loadElf(image, guestRam()).pvhEntry, 0x100_0008);
});

test.run();

// configureSystem end to end on plain memory: which entry and protocol it
// picks for each kernel format, and what it leaves at the fixed addresses.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BootConfigError, configureSystem, detectKernelFormat } from '../../../../src/main/arch/configure';
import { CMDLINE_START, MPTABLE_START, PML4_START, PVH_INFO_START, ZERO_PAGE_START } from '../../../../src/main/layout';
import { guestMemoryLayout } from '../../../../src/main/arch/memory-map';
import { GuestMemory } from '../../../../src/main/arch/guest-memory';
import { fakeBzImage } from '../../../fixtures/fake-bzimage';
import { PT_LOAD, PT_NOTE, SegmentSpec, buildElf, buildElf32, note, u32le } from '../../../fixtures/elf-image';

const MIB = 1024 * 1024;
const CODE = new Uint8Array(0x100).fill(0x90);

function machine(mib: number) {
  const layout = guestMemoryLayout(mib * MIB);
  return { layout, memory: GuestMemory.allocate(layout) };
}

function elfKernel(withPvh: boolean): Uint8Array {
  const segments: SegmentSpec[] = [{ type: PT_LOAD, paddr: 0x100000, data: CODE }];
  if (withPvh) segments.push({ type: PT_NOTE, paddr: 0, data: note('Xen\0', 18, u32le(0x100040)) });
  return buildElf({ entry: 0x100000, segments });
}

const options = (kernel: Uint8Array, protocol: 'auto' | 'linux' | 'pvh' = 'auto') => ({
  kernel, cmdline: 'quiet', cpuCount: 2, protocol, randomBytes: (n: number) => new Uint8Array(n).fill(7),
});

test('format detection: ELF, bzImage, and a clear error for anything else', () => {
  assert.is(detectKernelFormat(elfKernel(false)), 'elf');
  assert.is(detectKernelFormat(fakeBzImage()), 'bzimage');
  assert.throws(() => detectKernelFormat(new TextEncoder().encode('#!/bin/sh\n')), /neither an ELF \(vmlinux\) nor a bzImage/);
});

test('an ELF without a PVH note boots through the 64-bit entry with a zero page and page tables', () => {
  const { layout, memory } = machine(128);
  const plan = configureSystem(memory, layout, options(elfKernel(false)));
  assert.is(plan.protocol, 'linux');
  assert.is(plan.entry, 0x100000);
  assert.is(plan.commandLine, 'console=ttyS0 noacpi reboot=k panic=-1 quiet');
  assert.is(new TextDecoder().decode(memory.read(CMDLINE_START, plan.commandLine.length + 1)), `${plan.commandLine}\0`);
  assert.is(memory.readU16(ZERO_PAGE_START + 0x1fe), 0xaa55, 'boot_flag');
  assert.is(memory.readU32(ZERO_PAGE_START + 0x228), CMDLINE_START, 'cmd_line_ptr');
  assert.is(memory.readU64(PML4_START) & 0xfffn, 0x3n, 'PML4[0] present and writable');
  assert.is(String.fromCharCode(...memory.read(MPTABLE_START, 4)), '_MP_');
  assert.equal(plan.mpTable.start, MPTABLE_START);
});

test('with a PVH note, auto picks PVH; --boot-protocol linux overrides it', () => {
  const pvh = machine(128);
  const plan = configureSystem(pvh.memory, pvh.layout, options(elfKernel(true)));
  assert.is(plan.protocol, 'pvh');
  assert.is(plan.entry, 0x100040);
  assert.is(pvh.memory.readU32(PVH_INFO_START), 0x336ec578, 'hvm_start_info magic');
  assert.is(pvh.memory.readU64(PVH_INFO_START + 24), BigInt(CMDLINE_START), 'cmdline_paddr (after magic, version, flags, nr_modules, modlist_paddr)');

  const linux = machine(128);
  const forced = configureSystem(linux.memory, linux.layout, options(elfKernel(true), 'linux'));
  assert.is(forced.protocol, 'linux');
  assert.is(forced.entry, 0x100000);
  assert.is(linux.memory.readU32(PVH_INFO_START), 0, 'no start info written');
});

test('--boot-protocol pvh without a note, or for a bzImage, is refused', () => {
  const { layout, memory } = machine(128);
  assert.throws(() => configureSystem(memory, layout, options(elfKernel(false), 'pvh')),
    (e: Error) => e instanceof BootConfigError && /needs an ELF kernel with a XEN_ELFNOTE_PHYS32_ENTRY note/.test(e.message));
  assert.throws(() => configureSystem(memory, layout, options(fakeBzImage(), 'pvh')), /use --boot-protocol linux/);
});

test('an initrd lands page-aligned above the kernel and is in the zero page', () => {
  const { layout, memory } = machine(128);
  const initrd = new Uint8Array(5000).fill(0xab);
  const plan = configureSystem(memory, layout, { ...options(elfKernel(false)), initrd });
  assert.ok(plan.initrd);
  assert.is(plan.initrd!.address % 4096, 0);
  assert.ok(plan.initrd!.address >= plan.kernelEnd);
  assert.is(plan.initrd!.address + 5000 <= 128 * MIB, true);
  assert.is(memory.readU32(ZERO_PAGE_START + 0x218), plan.initrd!.address, 'ramdisk_image');
  assert.is(memory.readU32(ZERO_PAGE_START + 0x21c), 5000, 'ramdisk_size');
  assert.equal(Array.from(memory.read(plan.initrd!.address, 2)), [0xab, 0xab]);
});

test('an ELF32 PVH kernel boots through PVH; --boot-protocol linux is refused for it', () => {
  const kernel = buildElf32({
    entry: 0x100000,
    segments: [{ type: PT_LOAD, paddr: 0x100000, data: CODE }, { type: PT_NOTE, data: note('Xen\0', 18, u32le(0x100040)) }],
  });
  const { layout, memory } = machine(128);
  const plan = configureSystem(memory, layout, options(kernel));
  assert.is(plan.protocol, 'pvh');
  assert.is(plan.entry, 0x100040);
  assert.is(configureSystem(memory, layout, options(kernel, 'pvh')).protocol, 'pvh');
  assert.throws(() => configureSystem(memory, layout, options(kernel, 'linux')), (error: unknown) =>
    error instanceof BootConfigError && /this ELF32 kernel boots only through its PVH entry/.test(error.message));
});

test.run();

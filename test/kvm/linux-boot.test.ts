// The Linux boot protocol as a guest sees it. guests/bootinfo (entered at
// its 64-bit entry with %rsi = zero page, or through PVH with %ebx =
// hvm_start_info) prints every boot table the way Linux reads it: the setup
// header, the command line, the initrd, the e820 table, the setup_data chain
// and the MP table it finds by scanning like mpparse.c. guests/bzimage is a
// tiny bzImage whose 64-bit entry prints the header the loader copied into
// the zero page. Each printed value is compared twice: with what tsvmm's
// pure builders (src/arch) say it meant to write, and with hand-written
// values for the key cases, so a builder and the VMM cannot agree on a
// wrong answer unnoticed.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GuestMemory } from '../../src/main/arch/guest-memory';
import { e820Map, E820Entry } from '../../src/main/arch/e820';
import { guestMemoryLayout } from '../../src/main/arch/memory-map';
import { BASE_COMMAND_LINE, buildCommandLine, commandLineCapacity } from '../../src/main/arch/cmdline';
import { placeInitrd } from '../../src/main/arch/initrd';
import { loadElf } from '../../src/main/arch/elf';
import { loadBzImage } from '../../src/main/arch/bzimage';
import { writeMpTable } from '../../src/main/arch/mptable';
import { RNG_SEED_BYTES, SETUP_RNG_SEED } from '../../src/main/arch/setup-data';
import { CMDLINE_START, SETUP_DATA_START, ZERO_PAGE_START } from '../../src/main/layout';
import { QEMU_MISSING, findQemu, runQemu } from '../support/qemu';
import { explain, guest, ROOT, runTsvmm, RunResult } from '../support/tsvmm';

const MIB = 1024 * 1024;
const BOOTINFO = guest('bootinfo');
const BZIMAGE = path.join(ROOT, 'guests', 'out', 'bzimage.bin');
const RUN_TIMEOUT_MS = 30_000;

/** An initrd of 12345 bytes (not a whole number of pages) with known ends: 11 22 33 44 ... ee ff 00 99. */
const INITRD_SIZE = 12345;
const INITRD_FIRST = '11 22 33 44';
const INITRD_LAST = 'ee ff 00 99';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-linux-boot-'));
const INITRD = path.join(tmp, 'initrd.img');
{
  const bytes = new Uint8Array(INITRD_SIZE);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + 3) & 0xff;
  bytes.set([0x11, 0x22, 0x33, 0x44], 0);
  bytes.set([0xee, 0xff, 0x00, 0x99], INITRD_SIZE - 4);
  fs.writeFileSync(INITRD, bytes);
}

const hex16 = (value: number): string => `0x${value.toString(16).padStart(16, '0')}`;
const hex8 = (value: number): string => `0x${value.toString(16).padStart(8, '0')}`;

/** Where tsvmm's loader ends the ELF's memory: what placeInitrd puts the initrd above. */
function elfKernelEnd(file: string): number {
  return loadElf(fs.readFileSync(file), GuestMemory.allocate([{ guestAddress: 0, size: 4 * MIB }])).kernelEnd;
}

/** What tsvmm means to write, from its pure builders. */
function planned(memMiB: number, cmdline: string | undefined, initrdSize: number | undefined, kernelEnd: number, kernelStart: number) {
  const layout = guestMemoryLayout(memMiB * MIB);
  const bytes = buildCommandLine(cmdline, commandLineCapacity(kernelStart));
  const commandLine = new TextDecoder().decode(bytes.subarray(0, bytes.length - 1));
  const initrdAddress = initrdSize === undefined ? undefined : placeInitrd({ size: initrdSize, kernelEnd, memoryLayout: layout });
  return { e820: e820Map(layout), commandLine, initrdAddress };
}

function e820Lines(label: string, entries: readonly E820Entry[]): string[] {
  return entries.map((e, i) => `bootinfo: ${label} ${i}: ${hex16(e.address)}-${hex16(e.address + e.size - 1)} type ${e.type}`);
}

/** The MP table lines for N vCPUs: APIC ids 0..N-1 (0 the BSP), the IOAPIC takes id N, ISA IRQ i -> pin i, ExtINT and NMI. */
function mpLines(cpus: number): string[] {
  const placement = writeMpTable(GuestMemory.allocate([{ guestAddress: 0, size: 1 * MIB }]), { cpuCount: cpus });
  // Header 44 bytes, 20 per processor, 8 per bus (2), IOAPIC (1), I/O interrupt (16) and local interrupt (2) entry.
  const length = 44 + 20 * cpus + 8 * (2 + 1 + 16 + 2);
  assert.is(placement.end - placement.start - 16, length, 'writeMpTable and the hand count disagree on the table length');
  assert.is(placement.start, 0x9fc00);
  const lines = [
    'bootinfo: mp floating pointer 0x0009fc00 found in base memory top spec 1.4 feature1 00 checksum ok',
    `bootinfo: mp table 0x0009fc10 length ${length} spec 1.4 checksum ok oem "TSVMM   " product "TSVMM KVM   " entries ${cpus + 21} lapic 0xfee00000`,
  ];
  for (let id = 0; id < cpus; id++) lines.push(`bootinfo: mp cpu apic ${id} version 14 enabled${id === 0 ? ' bsp' : ''}`);
  lines.push('bootinfo: mp bus 0 "PCI   "', 'bootinfo: mp bus 1 "ISA   "', `bootinfo: mp ioapic id ${cpus} version 11 flags 01 address 0xfec00000`);
  for (let irq = 0; irq < 16; irq++) lines.push(`bootinfo: mp intsrc type 0 flags 0000 bus 1 irq ${irq} apic ${cpus} pin ${irq}`);
  lines.push(
    'bootinfo: mp lintsrc type 3 flags 0000 bus 1 irq 0 apic 0 lint 0',
    'bootinfo: mp lintsrc type 1 flags 0000 bus 1 irq 0 apic 255 lint 1',
    `bootinfo: mp counts processors ${cpus} buses 2 ioapics 1 intsrc 16 lintsrc 2`,
  );
  return lines;
}

interface LinuxCase {
  cpus: number;
  memMiB: number;
  cmdline?: string;
  initrd?: boolean;
}

/** The whole output bootinfo prints through the 64-bit Linux entry. */
function expectedLinuxOutput(c: LinuxCase): string {
  const plan = planned(c.memMiB, c.cmdline, c.initrd ? INITRD_SIZE : undefined, elfKernelEnd(BOOTINFO), 0x100000);
  const lines = [
    `bootinfo: protocol linux zero_page ${hex16(ZERO_PAGE_START)}`,
    'bootinfo: hdr boot_flag aa55 header 53726448 version 020f type_of_loader ff loadflags 01',
    `bootinfo: hdr kernel_alignment 0x01000000 cmd_line_ptr ${hex16(CMDLINE_START)} cmdline_size ${plan.commandLine.length}`,
    `bootinfo: cmdline "${plan.commandLine}"`,
    plan.initrdAddress === undefined
      ? 'bootinfo: ramdisk none'
      : `bootinfo: ramdisk image ${hex16(plan.initrdAddress)} size ${INITRD_SIZE} first ${INITRD_FIRST} last ${INITRD_LAST}`,
    `bootinfo: e820 ${plan.e820.length} entries`,
    ...e820Lines('e820', plan.e820),
    `bootinfo: setup_data ${hex16(SETUP_DATA_START)} type ${SETUP_RNG_SEED} len ${RNG_SEED_BYTES}`,
    'bootinfo: setup_data end 1 nodes',
    ...mpLines(c.cpus),
    'bootinfo: done',
  ];
  return lines.join('\n') + '\n';
}

async function bootinfo(args: string[]): Promise<RunResult> {
  return runTsvmm(['--kernel', BOOTINFO, ...args], { timeoutMs: RUN_TIMEOUT_MS });
}

function linuxArgs(c: LinuxCase): string[] {
  const args = ['--boot-protocol', 'linux', '--cpus', String(c.cpus), '--mem', String(c.memMiB)];
  if (c.cmdline !== undefined) args.push('--cmdline', c.cmdline);
  if (c.initrd) args.push('--initrd', INITRD);
  return args;
}

// ---- Hand-written expectations for the key cases: independent of src/arch ----

test('bootinfo, linux entry, --cpus 1 --mem 128: every line, written out by hand', async () => {
  const result = await bootinfo(linuxArgs({ cpus: 1, memMiB: 128 }));
  assert.is(result.code, 0, explain(result));
  assert.is(result.stderr, '', explain(result));
  const lines = result.stdout.split('\n');
  const head = [
    'bootinfo: protocol linux zero_page 0x0000000000007000',
    'bootinfo: hdr boot_flag aa55 header 53726448 version 020f type_of_loader ff loadflags 01',
    'bootinfo: hdr kernel_alignment 0x01000000 cmd_line_ptr 0x0000000000020000 cmdline_size 38',
    'bootinfo: cmdline "console=ttyS0 noacpi reboot=k panic=-1"',
    'bootinfo: ramdisk none',
    'bootinfo: e820 3 entries',
    // RAM below the EBDA, RAM from 1 MiB to 128 MiB, KVM's identity-map page + 3 TSS pages.
    'bootinfo: e820 0: 0x0000000000000000-0x000000000009fbff type 1',
    'bootinfo: e820 1: 0x0000000000100000-0x0000000007ffffff type 1',
    'bootinfo: e820 2: 0x00000000fffbc000-0x00000000fffbffff type 2',
    'bootinfo: setup_data 0x0000000000010000 type 9 len 32',
    'bootinfo: setup_data end 1 nodes',
    'bootinfo: mp floating pointer 0x0009fc00 found in base memory top spec 1.4 feature1 00 checksum ok',
    'bootinfo: mp table 0x0009fc10 length 232 spec 1.4 checksum ok oem "TSVMM   " product "TSVMM KVM   " entries 22 lapic 0xfee00000',
    'bootinfo: mp cpu apic 0 version 14 enabled bsp',
    'bootinfo: mp bus 0 "PCI   "',
    'bootinfo: mp bus 1 "ISA   "',
    'bootinfo: mp ioapic id 1 version 11 flags 01 address 0xfec00000',
    'bootinfo: mp intsrc type 0 flags 0000 bus 1 irq 0 apic 1 pin 0',
  ];
  assert.equal(lines.slice(0, head.length), head, explain(result));
  assert.equal(lines.slice(-5), [
    'bootinfo: mp lintsrc type 3 flags 0000 bus 1 irq 0 apic 0 lint 0',
    'bootinfo: mp lintsrc type 1 flags 0000 bus 1 irq 0 apic 255 lint 1',
    'bootinfo: mp counts processors 1 buses 2 ioapics 1 intsrc 16 lintsrc 2',
    'bootinfo: done',
    '',
  ], explain(result));
  assert.is(result.stdout, expectedLinuxOutput({ cpus: 1, memMiB: 128 }), 'the hand-written lines and the builders disagree');
});

test('bootinfo, linux entry, --cpus 4 --mem 3328 --cmdline --initrd: RAM ends exactly at the 32-bit gap, initrd at its top', async () => {
  const c: LinuxCase = { cpus: 4, memMiB: 3328, cmdline: '  root=/dev/vda  quiet x=1,2 ', initrd: true };
  const result = await bootinfo(linuxArgs(c));
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, expectedLinuxOutput(c), explain(result));
  // By hand: 3.25 GiB of RAM is 0..0xd0000000, so no RAM above 4 GiB; the initrd's 12345 bytes take 4 pages below 0xd0000000.
  for (const line of [
    'bootinfo: cmdline "console=ttyS0 noacpi reboot=k panic=-1 root=/dev/vda  quiet x=1,2"',
    'bootinfo: hdr kernel_alignment 0x01000000 cmd_line_ptr 0x0000000000020000 cmdline_size 65',
    'bootinfo: ramdisk image 0x00000000cfffc000 size 12345 first 11 22 33 44 last ee ff 00 99',
    'bootinfo: e820 3 entries',
    'bootinfo: e820 1: 0x0000000000100000-0x00000000cfffffff type 1',
    'bootinfo: e820 2: 0x00000000fffbc000-0x00000000fffbffff type 2',
    'bootinfo: mp cpu apic 3 version 14 enabled',
    'bootinfo: mp ioapic id 4 version 11 flags 01 address 0xfec00000',
    'bootinfo: mp counts processors 4 buses 2 ioapics 1 intsrc 16 lintsrc 2',
  ]) {
    assert.ok(result.stdout.includes(`${line}\n`), `missing "${line}"\n${explain(result)}`);
  }
});

test('bootinfo, linux entry, --cpus 2 --mem 5120: RAM above the gap continues at 4 GiB', async () => {
  const c: LinuxCase = { cpus: 2, memMiB: 5120, initrd: true };
  const result = await bootinfo(linuxArgs(c));
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, expectedLinuxOutput(c), explain(result));
  // By hand: 3.25 GiB below the gap, the other 1.75 GiB at 0x100000000..0x170000000.
  assert.ok(result.stdout.includes([
    'bootinfo: e820 4 entries',
    'bootinfo: e820 0: 0x0000000000000000-0x000000000009fbff type 1',
    'bootinfo: e820 1: 0x0000000000100000-0x00000000cfffffff type 1',
    'bootinfo: e820 2: 0x00000000fffbc000-0x00000000fffbffff type 2',
    'bootinfo: e820 3: 0x0000000100000000-0x000000016fffffff type 1',
  ].join('\n')), explain(result));
  assert.ok(result.stdout.includes('bootinfo: ramdisk image 0x00000000cfffc000 size 12345 first 11 22 33 44 last ee ff 00 99\n'), explain(result));
});

for (const c of [
  { cpus: 1, memMiB: 3328 },
  { cpus: 4, memMiB: 128, cmdline: 'a', initrd: true },
  { cpus: 8, memMiB: 256 },
] as LinuxCase[]) {
  test(`bootinfo, linux entry, --cpus ${c.cpus} --mem ${c.memMiB}${c.cmdline ? ' --cmdline' : ''}${c.initrd ? ' --initrd' : ''}: output equals the builders' plan`, async () => {
    const result = await bootinfo(linuxArgs(c));
    assert.is(result.code, 0, explain(result));
    assert.is(result.stdout, expectedLinuxOutput(c), explain(result));
  });
}

test('bootinfo, PVH entry, --cpus 2 --mem 128 --cmdline --initrd: hvm_start_info, module and memory map', async () => {
  const result = await bootinfo(['--boot-protocol', 'pvh', '--cpus', '2', '--mem', '128', '--cmdline', 'hello pvh', '--initrd', INITRD]);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stderr, '', explain(result));
  const plan = planned(128, 'hello pvh', INITRD_SIZE, elfKernelEnd(BOOTINFO), 0x100000);
  const expected = [
    'bootinfo: protocol pvh start_info 0x0000000000006000',
    'bootinfo: pvh magic 336ec578 version 1 flags 00000000 nr_modules 1 rsdp_paddr 0x0000000000000000',
    'bootinfo: pvh modlist_paddr 0x0000000000006040 cmdline_paddr 0x0000000000020000 memmap_paddr 0x0000000000006100 memmap_entries 3',
    'bootinfo: cmdline "console=ttyS0 noacpi reboot=k panic=-1 hello pvh"',
    'bootinfo: module 0: paddr 0x0000000007ffc000 size 12345 first 11 22 33 44 last ee ff 00 99',
    'bootinfo: memmap 0: 0x0000000000000000-0x000000000009fbff type 1',
    'bootinfo: memmap 1: 0x0000000000100000-0x0000000007ffffff type 1',
    'bootinfo: memmap 2: 0x00000000fffbc000-0x00000000fffbffff type 2',
    ...mpLines(2),
    'bootinfo: done',
  ];
  assert.is(result.stdout, expected.join('\n') + '\n', explain(result));
  // The same values from the builders.
  assert.is(plan.initrdAddress, 0x7ffc000);
  assert.equal(e820Lines('memmap', plan.e820), expected.slice(5, 8));
  assert.is(`bootinfo: cmdline "${plan.commandLine}"`, expected[3]);
});

// ---- The bzImage: setup header copied into the zero page, entry at load address + 0x200 ----

function expectedBzImage(cmdline: string, ramdisk: string): string {
  return [
    'bzimage: entered at 64-bit entry 0x0000000000100200, rsi=0x0000000000007000',
    // From the image: version 2.15, one setup sector, syssize 0x400 paragraphs (16 KiB of protected-mode code).
    'bzimage: setup header version 020f boot_flag aa55 header "HdrS" setup_sects 1 syssize 0x00000400',
    // kernel_alignment: the image says 0x200000, tsvmm writes its BOOT_KERNEL_ALIGNMENT (16 MiB) over it.
    'bzimage: loadflags 01 xloadflags 0001 relocatable_kernel 1 min_alignment 21 kernel_alignment 0x01000000',
    'bzimage: pref_address 0x0000000001000000 init_size 0x00004000 initrd_addr_max 0x7fffffff type_of_loader ff',
    // cmdline_size: the image's own limit (2047) is kept, it is the kernel's to tell.
    `bzimage: cmd_line_ptr 0x0000000000020000 cmdline_size 2047 cmdline "${cmdline}"`,
    ramdisk,
    'bzimage: e820 3 entries',
    'bzimage: done',
  ].join('\n') + '\n';
}

test('bzimage: tsvmm enters a bzImage at load address + 0x200 with %rsi at a zero page holding its setup header', async () => {
  const result = await runTsvmm(['--kernel', BZIMAGE, '--cmdline', 'bz test'], { timeoutMs: RUN_TIMEOUT_MS });
  assert.is(result.code, 0, explain(result));
  assert.is(result.stderr, '', explain(result));
  assert.is(result.stdout, expectedBzImage(`${BASE_COMMAND_LINE} bz test`, 'bzimage: ramdisk none'), explain(result));
});

test('bzimage with --initrd --mem 64: the ramdisk goes to the top of RAM, above the kernel\'s init_size window at 16 MiB', async () => {
  const result = await runTsvmm(['--kernel', BZIMAGE, '--initrd', INITRD, '--mem', '64'], { timeoutMs: RUN_TIMEOUT_MS });
  assert.is(result.code, 0, explain(result));
  // By hand: 64 MiB = 0x4000000; 12345 bytes round down to 0x4000000 - 0x4000.
  assert.is(result.stdout, expectedBzImage(BASE_COMMAND_LINE, 'bzimage: ramdisk image 0x0000000003ffc000 size 12345'), explain(result));
  // And from the builders: loadBzImage's kernelEnd (16 MiB + init_size) and placeInitrd with the header's initrd_addr_max.
  const image = fs.readFileSync(BZIMAGE);
  const loaded = loadBzImage(image, GuestMemory.allocate([{ guestAddress: 0, size: 64 * MIB }]));
  assert.is(loaded.entry64, 0x100200);
  assert.is(loaded.kernelEnd, 0x1000000 + 0x4000);
  const layout = guestMemoryLayout(64 * MIB);
  assert.is(placeInitrd({ size: INITRD_SIZE, kernelEnd: loaded.kernelEnd, initrdAddrMax: loaded.header.initrdAddrMax, memoryLayout: layout }), 0x3ffc000);
  assert.is(hex8(loaded.header.initrdAddrMax), '0x7fffffff');
});

// ---- The guest's parsing code against QEMU's tables (PVH entry, SeaBIOS's MP table in the BIOS ROM) ----

test('bootinfo under QEMU: its hvm_start_info, the initrd module and SeaBIOS\'s MP table parse, checksums ok', async () => {
  const qemu = findQemu();
  if (qemu === undefined) {
    console.log(QEMU_MISSING);
    return;
  }
  const run = await runQemu(qemu, BOOTINFO, ['-append', 'hello pvh', '-initrd', INITRD]);
  const output = run.output.slice(run.output.indexOf('bootinfo: '));
  const has = (pattern: RegExp): void => assert.match(output, pattern, output);
  has(/^bootinfo: protocol pvh start_info 0x[0-9a-f]{16}\n/);
  has(/\nbootinfo: pvh magic 336ec578 version 1 flags 00000000 nr_modules 1 rsdp_paddr 0x[0-9a-f]{16}\n/);
  has(/\nbootinfo: cmdline "hello pvh"\n/);
  has(/\nbootinfo: module 0: paddr 0x[0-9a-f]{13}000 size 12345 first 11 22 33 44 last ee ff 00 99\n/);
  has(/\nbootinfo: memmap 0: 0x0000000000000000-0x000000000009fbff type 1\n/);
  has(/\nbootinfo: mp floating pointer 0x000f[0-9a-f]{4} found in bios rom spec 1\.4 feature1 00 checksum ok\n/);
  has(/\nbootinfo: mp table 0x000f[0-9a-f]{4} length \d+ spec 1\.4 checksum ok oem "BOCHSCPU" product "0\.1         " entries \d+ lapic 0xfee00000\n/);
  has(/\nbootinfo: mp cpu apic 0 version 14 enabled bsp\n/);
  has(/\nbootinfo: mp ioapic id \d+ version 11 flags 01 address 0xfec00000\n/);
  has(/\nbootinfo: mp counts processors 1 buses 2 ioapics 1 intsrc \d+ lintsrc 2\nbootinfo: done\n$/);
});

test.after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();

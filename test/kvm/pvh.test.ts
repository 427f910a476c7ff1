// The PVH boot ABI, tsvmm against QEMU as the reference. guests/pvh-info
// (another owner's guest) enters through its XEN_ELFNOTE_PHYS32_ENTRY with
// %ebx = hvm_start_info and prints the magic and version, the command line,
// the modules (the initrd) and the memory map. Both VMMs must agree on the
// ABI (magic, version, one module of the initrd's size); they differ where
// they should: tsvmm prepends its base command line and hands out its own
// e820Map, QEMU passes -append as is and its SeaBIOS-shaped map.
// QEMU is optional: without qemu-system-x86_64 that half passes with a
// printed "not checked: ..." (see qemu-guests.test.ts for why not test.skip).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GuestMemory } from '../../src/main/arch/guest-memory';
import { e820Map } from '../../src/main/arch/e820';
import { guestMemoryLayout } from '../../src/main/arch/memory-map';
import { BASE_COMMAND_LINE } from '../../src/main/arch/cmdline';
import { placeInitrd } from '../../src/main/arch/initrd';
import { loadElf } from '../../src/main/arch/elf';
import { QEMU_MISSING, findQemu, runQemu } from '../support/qemu';
import { explain, guest, runTsvmm } from '../support/tsvmm';

const MIB = 1024 * 1024;
const PVH_INFO = guest('pvh-info');
/** QEMU_BASE_ARGS's -m: both VMMs get the same RAM. */
const MEM_MIB = 128;
const RUN_TIMEOUT_MS = 30_000;

const INITRD_SIZE = 12345;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-pvh-'));
const INITRD = path.join(tmp, 'initrd.img');
fs.writeFileSync(INITRD, Uint8Array.from({ length: INITRD_SIZE }, (_, i) => (i * 13 + 5) & 0xff));

const hex16 = (value: number): string => value.toString(16).padStart(16, '0');

interface PvhReport {
  magicLine: string;
  cmdline: string;
  modules: number;
  moduleRanges: Array<{ first: number; last: number }>;
  memmap: string[];
  done: boolean;
}

/** Reads pvh-info's lines ("pvh: ..."); anything else is an error, so stray output is noticed. */
function parseReport(lines: string[]): PvhReport {
  const report: PvhReport = { magicLine: '', cmdline: '', modules: -1, moduleRanges: [], memmap: [], done: false };
  for (const line of lines) {
    let m: RegExpMatchArray | null;
    if (line.startsWith('pvh: magic ')) report.magicLine = line;
    else if ((m = line.match(/^pvh: cmdline "(.*)"$/))) report.cmdline = m[1];
    else if ((m = line.match(/^pvh: modules (\d+)$/))) report.modules = Number(m[1]);
    else if ((m = line.match(/^pvh: module \d+: ([0-9a-f]{16})-([0-9a-f]{16})$/))) report.moduleRanges.push({ first: parseInt(m[1], 16), last: parseInt(m[2], 16) });
    else if (line.startsWith('pvh: memmap ')) report.memmap.push(line);
    else if (line === 'pvh: done') report.done = true;
    else throw new Error(`unexpected line from pvh-info: ${JSON.stringify(line)}`);
  }
  return report;
}

function lines(text: string): string[] {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

test('--cmdline-base replaces the base line, on the command line and in --config (the command line wins)', async () => {
  const direct = await runTsvmm(['--kernel', PVH_INFO, '--mem', '128M', '--cmdline-base', 'console=ttyS0 reboot=t', '--cmdline', 'ci'], { timeoutMs: RUN_TIMEOUT_MS });
  assert.is(direct.code, 0, explain(direct));
  assert.is(parseReport(lines(direct.stdout)).cmdline, 'console=ttyS0 reboot=t ci', explain(direct));
  const config = path.join(tmp, 'vm.json');
  fs.writeFileSync(config, JSON.stringify({ kernel: PVH_INFO, memoryMiB: MEM_MIB, cmdlineBase: 'console=ttyS0 from-file' }));
  const fromFile = await runTsvmm(['--config', config], { timeoutMs: RUN_TIMEOUT_MS });
  assert.is(parseReport(lines(fromFile.stdout)).cmdline, 'console=ttyS0 from-file', explain(fromFile));
  const overridden = await runTsvmm(['--config', config, '--cmdline-base=', '--cmdline', 'only'], { timeoutMs: RUN_TIMEOUT_MS });
  assert.is(parseReport(lines(overridden.stdout)).cmdline, 'only', explain(overridden));
});

test('pvh-info under tsvmm: magic and version, base command line + " hello pvh", the initrd as one module, memmap = e820Map(128 MiB)', async () => {
  const result = await runTsvmm(['--kernel', PVH_INFO, '--mem', String(MEM_MIB), '--cmdline', 'hello pvh', '--initrd', INITRD], { timeoutMs: RUN_TIMEOUT_MS });
  assert.is(result.code, 0, explain(result));
  assert.is(result.stderr, '', explain(result));
  const report = parseReport(lines(result.stdout));
  assert.is(report.magicLine, 'pvh: magic 336ec578 version 1', explain(result));
  assert.is(report.cmdline, `${BASE_COMMAND_LINE} hello pvh`, explain(result));
  assert.is(report.cmdline, 'console=ttyS0 noacpi reboot=k panic=-1 hello pvh');
  assert.is(report.modules, 1, explain(result));

  const layout = guestMemoryLayout(MEM_MIB * MIB);
  const kernelEnd = loadElf(fs.readFileSync(PVH_INFO), GuestMemory.allocate([{ guestAddress: 0, size: 4 * MIB }])).kernelEnd;
  const address = placeInitrd({ size: INITRD_SIZE, kernelEnd, memoryLayout: layout });
  assert.is(address, 0x7ffc000, 'by hand: 12345 bytes end in the last 4 pages below 128 MiB');
  assert.equal(report.moduleRanges, [{ first: address, last: address + INITRD_SIZE - 1 }], explain(result));

  const expectedMemmap = e820Map(layout).map((e, i) => `pvh: memmap ${i}: ${hex16(e.address)}-${hex16(e.address + e.size - 1)} type ${e.type}`);
  assert.equal(report.memmap, expectedMemmap, explain(result));
  assert.equal(report.memmap, [
    'pvh: memmap 0: 0000000000000000-000000000009fbff type 1',
    'pvh: memmap 1: 0000000000100000-0000000007ffffff type 1',
    'pvh: memmap 2: 00000000fffbc000-00000000fffbffff type 2',
  ], 'by hand');
  assert.ok(report.done, explain(result));
});

test('pvh-info under QEMU and tsvmm: the same ABI lines, the module of the initrd\'s size; QEMU passes -append as is', async () => {
  const qemu = findQemu();
  if (qemu === undefined) {
    console.log(QEMU_MISSING);
    return;
  }
  const [ours, theirs] = [
    await runTsvmm(['--kernel', PVH_INFO, '--mem', String(MEM_MIB), '--cmdline', 'hello pvh', '--initrd', INITRD], { timeoutMs: RUN_TIMEOUT_MS }),
    await runQemu(qemu, PVH_INFO, ['-append', 'hello pvh', '-initrd', INITRD]),
  ];
  const why = `--- QEMU (status ${theirs.status}${theirs.timedOut ? ', timed out' : ''})\n${theirs.output}\n${theirs.stderr}\n--- tsvmm\n${explain(ours)}`;
  assert.not.ok(theirs.timedOut, why);
  assert.is(theirs.status, 0, why);
  const q = parseReport(lines(theirs.output));
  const t = parseReport(lines(ours.stdout));

  assert.is(q.magicLine, 'pvh: magic 336ec578 version 1', why);
  assert.is(t.magicLine, q.magicLine, why);
  assert.is(q.cmdline, 'hello pvh', why);
  assert.is(t.cmdline, `${BASE_COMMAND_LINE} ${q.cmdline}`, why);
  assert.is(q.modules, 1, why);
  assert.is(t.modules, q.modules, why);
  const sizes = (r: PvhReport): number[] => r.moduleRanges.map((m) => m.last - m.first + 1);
  assert.equal(sizes(q), [INITRD_SIZE], why);
  assert.equal(sizes(t), sizes(q), why);
  // Both put it page-aligned and below 128 MiB (QEMU under its ACPI tables, tsvmm at the top of RAM).
  for (const r of [q, t]) assert.ok(r.moduleRanges[0].first % 0x1000 === 0 && r.moduleRanges[0].last < MEM_MIB * MIB, why);
  // Both memory maps start with the same usable RAM below the EBDA (0x9fc00); the rest differs by design.
  for (const r of [q, t]) {
    assert.is(r.memmap[0], 'pvh: memmap 0: 0000000000000000-000000000009fbff type 1', why);
    assert.ok(r.done, why);
  }
});

test.after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

test.run();

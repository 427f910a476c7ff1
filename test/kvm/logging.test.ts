// -v / --log-level end to end: off by default; at info the kernel's place,
// the boot protocol, the e820 map handed over and the devices; at debug each
// unclaimed address once, the first time the guest touches it. guests/mmio
// (run without its test device) writes 0xd0000000/2/4/8, reads them back and
// reads 0xd0100000: every one unclaimed.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { e820Map } from '../../src/main/arch/e820';
import { guestMemoryLayout } from '../../src/main/arch/memory-map';
import { e820Line } from '../../src/main/vmm/log';
import { explain, guest, runTsvmm } from '../support/tsvmm';

const MMIO = guest('mmio');
const GUEST_OUTPUT = 'mmio: read8 ff read16 ffff read32 ffffffff read64 ffffffffffffffff\nmmio: unclaimed ffffffff\n';
const MEM_MIB = 128;

const logLines = (stderr: string, level: string) => stderr.split('\n').filter((line) => line.startsWith(`tsvmm: ${level}: `)).map((line) => line.slice(`tsvmm: ${level}: `.length));

test('no log unless asked: stderr stays empty', async () => {
  const result = await runTsvmm(['--kernel', MMIO, '--mem', String(MEM_MIB)]);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, GUEST_OUTPUT);
  assert.is(result.stderr, '');
});

test('-v: where the kernel went, the boot protocol, the e820 map handed over, the devices; no debug lines', async () => {
  const result = await runTsvmm(['--kernel', MMIO, '--mem', String(MEM_MIB), '-v']);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, GUEST_OUTPUT);
  const info = logLines(result.stderr, 'info');
  assert.match(info[0], /^kernel: ELF of \d+ bytes loaded at 0x100000-0x[0-9a-f]+$/);
  assert.match(info[1], /^boot protocol: pvh \(--boot-protocol auto\), entry 0x[0-9a-f]+$/);
  const e820 = info.filter((line) => line.startsWith('e820: '));
  assert.equal(e820, e820Map(guestMemoryLayout(MEM_MIB * 1024 * 1024)).map(e820Line), explain(result));
  assert.ok(info.includes('device com1: ports 0x3f8-0x3ff, irq 4'), explain(result));
  assert.ok(info.includes('device cmos: ports 0x70-0x71'), explain(result));
  assert.is(info[info.length - 1], 'exit: guest reset (i8042) (exit code 0)');
  assert.is(logLines(result.stderr, 'debug').length, 0);
});

test('-vv: each unclaimed address once, with the kind of its first access; the guest sees the same all-ones answers', async () => {
  const result = await runTsvmm(['--kernel', MMIO, '--mem', String(MEM_MIB), '-vv']);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, GUEST_OUTPUT, 'forwarding everything changes nothing the guest sees');
  assert.equal(logLines(result.stderr, 'debug'), [
    'unclaimed mmio address 0xd0000000, first hit: write dropped',
    'unclaimed mmio address 0xd0000002, first hit: write dropped',
    'unclaimed mmio address 0xd0000004, first hit: write dropped',
    'unclaimed mmio address 0xd0000008, first hit: write dropped',
    'unclaimed mmio address 0xd0100000, first hit: read answered with all ones',
  ], explain(result));
});

test('without a log the vCPU answers unclaimed accesses itself; only debug logging forwards them', async () => {
  const counters = async (extra: string[]) => {
    const result = await runTsvmm(['--kernel', MMIO, '--mem', String(MEM_MIB), '--stats=json', ...extra]);
    assert.is(result.code, 0, explain(result));
    return JSON.parse(result.stderr.split('\n').filter((line) => line.startsWith('{'))[0]).vcpus[0];
  };
  const off = await counters([]);
  const info = await counters(['-v']);
  const debug = await counters(['-vv']);
  assert.is(off.unclaimed, 9, 'four writes, four reads back and one read at 0xd0100000, all answered on the vCPU');
  assert.is(info.unclaimed, 9);
  assert.is(debug.unclaimed, 0);
  assert.is(debug.forwarded, off.forwarded + 9);
});

test('--log-file: the log goes to the file, stderr stays empty; a bad path is one line, exit 2', async () => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-log-')), 'tsvmm.log');
  const result = await runTsvmm(['--kernel', MMIO, '--mem', String(MEM_MIB), '--log-file', file]);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stderr, '');
  assert.match(fs.readFileSync(file, 'utf8'), /^tsvmm: info: kernel: ELF of \d+ bytes/);
  const bad = await runTsvmm(['--log-file', '/nonexistent/tsvmm.log']);
  assert.is(bad.code, 2, explain(bad));
  assert.is(bad.stderr, 'tsvmm: cannot open --log-file /nonexistent/tsvmm.log: ENOENT; give a path to a writable file\n');
});

test.run();

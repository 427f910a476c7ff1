// Hostile inputs through the real CLI: each row is an argv (and what stdout
// is), the exit code it must give, and stderr must be exactly one line with
// no stack trace.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAIN, ROOT, guest } from '../support/tsvmm';
import { PT_LOAD, PT_NOTE, buildElf, concat, note, u32le } from '../fixtures/elf-image';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-hostile-'));
const fifo = path.join(dir, 'fifo');
spawnSync('mkfifo', [fifo]);
const longNoteKernel = path.join(dir, 'long-note.elf');
// Its entry lies outside every segment: refused (exit 2) after the notes are walked.
fs.writeFileSync(longNoteKernel, buildElf({
  entry: 0x200000,
  segments: [
    { type: PT_LOAD, paddr: 0x100000, data: new Uint8Array(16) },
    { type: PT_NOTE, data: concat(note('N'.repeat(300_000), 1, u32le(0))) },
  ],
}));
const bigInitrd = path.join(dir, 'big-initrd');
fs.closeSync(fs.openSync(bigInitrd, 'w'));
fs.truncateSync(bigInitrd, 65 * 1024 * 1024); // sparse, more than --mem 64

interface Row {
  argv: string[];
  code: number;
  /** What fd 1 is: a pipe the test reads (default) or /dev/full. */
  stdout?: 'pipe' | '/dev/full';
  /** A pattern the one stderr line must match. */
  line?: RegExp;
}

const rows: Row[] = [
  // item 3: files that are not regular files, or larger than guest RAM
  { argv: ['--kernel', '/dev/zero'], code: 2, line: /kernel \/dev\/zero: it is a character device, not a regular file/ },
  { argv: ['--kernel', '/dev/urandom'], code: 2, line: /character device/ },
  { argv: ['--kernel', fifo], code: 2, line: /it is a FIFO, not a regular file/ },
  { argv: ['--initrd', '/dev/zero'], code: 2, line: /initrd \/dev\/zero: it is a character device/ },
  { argv: ['--initrd', bigInitrd, '--mem', '64'], code: 2, line: /65\.0 MiB, more than the 64\.0 MiB of guest RAM/ },
  // item 7: output that cannot be opened or written
  { argv: ['--serial', `file:${path.join(dir, 'missing', 'out')}`], code: 2, line: /ENOENT/ },
  { argv: ['--serial', `file:${dir}`], code: 2, line: /EISDIR/ },
  { argv: ['--serial', `file:${fifo}`], code: 2, line: /ENXIO/ },
  { argv: ['--serial', 'file:/dev/full'], code: 1, line: /cannot write guest output to --serial file:\/dev\/full: ENOSPC/ },
  { argv: [], stdout: '/dev/full', code: 1, line: /cannot write guest output to stdout: ENOSPC/ },
  // item 10: an ELF note with a 300 KB name
  { argv: ['--kernel', longNoteKernel], code: 2, line: /e_entry 0x200000 is not inside any load segment/ },
  // item 11: values that must be refused
  { argv: ['--initrd', ''], code: 2, line: /--initrd needs a value/ },
  { argv: ['--initrd='], code: 2, line: /--initrd needs a value/ },
  { argv: ['--cmdline='], code: 2, line: /--cmdline needs a value/ },
  { argv: ['--cpus', '1', '--cpus', '2'], code: 2, line: /--cpus is given more than once/ },
  { argv: ['--rtc-base', '0'], code: 2, line: /--rtc-base/ },
  { argv: ['--rtc-base', '1.5'], code: 2, line: /--rtc-base/ },
  { argv: ['--rtc-base', '2026-02-30'], code: 2, line: /not a date and time that exists/ },
  { argv: ['--rtc-base', '+275760-09-13T00:00:00'], code: 2, line: /--rtc-base/ },
  { argv: ['--spin-limit', '1e20'], code: 2, line: /--spin-limit/ },
  { argv: ['--spin-limit', '100000000000000000000'], code: 2, line: /--spin-limit must be at most/ },
  // from cli.test.ts's kind: a missing kernel
  { argv: ['--kernel', path.join(dir, 'no-such-kernel')], code: 2, line: /ENOENT/ },
];

function run(row: Row): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const stdout = row.stdout === '/dev/full' ? fs.openSync('/dev/full', 'w') : 'pipe';
    const child = spawn(process.execPath, [MAIN, ...row.argv], { cwd: ROOT, stdio: ['ignore', stdout, 'pipe'] });
    if (typeof stdout === 'number') fs.closeSync(stdout);
    let stderr = '';
    child.stdout?.resume();
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stderr }); });
  });
}

guest('hello'); // the default kernel must be built

for (const row of rows) {
  test(`${row.stdout === '/dev/full' ? '>/dev/full ' : ''}${row.argv.map((a) => (a === '' ? "''" : a.replace(dir, '$TMP'))).join(' ') || '(no arguments)'}: exit ${row.code}, one line`, async () => {
    const result = await run(row);
    const explain = `exit ${result.code}\n--- stderr\n${result.stderr}`;
    assert.is(result.code, row.code, explain);
    assert.ok(!result.stderr.includes('    at '), `no stack trace\n${explain}`);
    assert.is(result.stderr.split('\n').length, 2, `exactly one line\n${explain}`);
    assert.ok(result.stderr.startsWith('tsvmm: ') && result.stderr.endsWith('\n'), explain);
    if (row.line) assert.match(result.stderr, row.line, explain);
  });
}

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();

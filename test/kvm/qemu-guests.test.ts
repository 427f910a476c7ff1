// The bare-metal test guests (guests/, built by `make -C guests` into
// guests/out/*.elf) booted by QEMU with KVM through their PVH entry: QEMU is
// the reference VMM, so a guest that passes here is right, and a tsvmm test
// that fails with the same guest points at tsvmm. Every guest resets through
// the i8042 (QEMU exits under -no-reboot) or, for `fault`, triple-faults.
// Not checked, with the reason printed, only when qemu-system-x86_64 is not
// installed (Debian: apt-get install qemu-system-x86). That case is one
// passing test that prints the reason rather than uvu's test.skip: the
// runner (scripts/run-tests.js) computes failures as Total - Passed -
// Skipped, and uvu's Total already leaves skipped tests out.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const QEMU = 'qemu-system-x86_64';
/** A guest runs in about 3 s here (mostly SeaBIOS); QEMU is killed after this long. */
const RUN_TIMEOUT_MS = 30_000;
/** What the guests' 8259/RTC/fw_cfg checks assume: QEMU's default PC with 128 MiB. */
const BASE_ARGS = ['-accel', 'kvm', '-M', 'pc', '-m', '128', '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio'];
/** SeaBIOS prints this (without a newline) to the serial console just before it jumps to the PVH entry. */
const SEABIOS_BANNER_END = 'Booting from ROM..';
/** The RTC start time handed to the cmos guest. */
const RTC_BASE = '2026-11-26T08:15:42';

/** The directory holding tsvmm's package.json, found upward from this file (src or dist-test). */
function packageRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && JSON.parse(fs.readFileSync(manifest, 'utf8')).name === 'tsvmm') return dir;
    if (path.dirname(dir) === dir) throw new Error(`no tsvmm package.json above ${__dirname}`);
  }
}

/** The full path of an executable on PATH, or undefined. */
function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function guestPath(name: string): string {
  const file = path.join(packageRoot(), 'guests', 'out', `${name}.elf`);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: build the guests with \`make -C guests\` (npm run build does)`);
  return file;
}

interface QemuRun {
  /** The guest's serial output: everything after SeaBIOS's banner, escape sequences removed. */
  output: string;
  /** Its lines, without the empty string after the final newline. */
  lines: string[];
  status: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stderr: string;
}

/** Boots guests/out/<name>.elf under QEMU with KVM and collects what it prints to COM1. */
function runGuest(qemu: string, name: string, extraArgs: string[] = []): Promise<QemuRun> {
  const args = [...BASE_ARGS, ...extraArgs, '-kernel', guestPath(name)];
  return new Promise((resolve, reject) => {
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, RUN_TIMEOUT_MS);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      let output = Buffer.concat(stdout).toString('latin1').replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '');
      const banner = output.lastIndexOf(SEABIOS_BANNER_END);
      if (banner >= 0) output = output.slice(banner + SEABIOS_BANNER_END.length);
      const lines = output.split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      resolve({ output, lines, status, signal, timedOut, stderr: Buffer.concat(stderr).toString('utf8') });
    });
  });
}

/** Asserts that QEMU exited by itself (guest reset or triple fault) and returns the guest's lines. */
async function boot(qemu: string, name: string, extraArgs: string[] = []): Promise<string[]> {
  const run = await runGuest(qemu, name, extraArgs);
  const context = `${name} ${extraArgs.join(' ')}: output ${JSON.stringify(run.output)}, stderr ${JSON.stringify(run.stderr)}`;
  assert.not.ok(run.timedOut, `QEMU still running after ${RUN_TIMEOUT_MS} ms and killed; ${context}`);
  assert.is(run.status, 0, `QEMU exit status; ${context}`);
  return run.lines;
}

const qemu = which(QEMU);
/** Registers a test that needs QEMU; without QEMU none is registered (see below). */
const qemuTest = qemu ? test : () => undefined;
const needQemu = (): string => qemu as string;

if (!qemu) {
  test('QEMU guests', () => {
    console.log(`not checked: ${QEMU} is not installed (apt-get install qemu-system-x86)`);
  });
}

qemuTest('hello: prints from long mode and resets', async () => {
  assert.equal(await boot(needQemu(), 'hello'), ['hello: long mode ok']);
});

for (const cpus of [1, 2, 8]) {
  qemuTest(`smp: starts all APs with -smp ${cpus}`, async () => {
    const ids = Array.from({ length: cpus }, (_, i) => i).join(' ');
    assert.equal(await boot(needQemu(), 'smp', ['-smp', String(cpus)]), [
      `smp: ${cpus} of ${cpus} CPUs online`,
      `smp: apic ids ${ids}`,
    ]);
  });
}

qemuTest('irq: ten COM1 THR-empty interrupts through the 8259 on vector 0x24', async () => {
  assert.equal(await boot(needQemu(), 'irq'), ['irq: 0123456789', 'irq: 10 interrupts on vector 0x24']);
});

qemuTest('cmos: reads the RTC (BCD, 24h) and the memory size', async () => {
  const lines = await boot(needQemu(), 'cmos', ['-rtc', `base=${RTC_BASE}`]);
  assert.is(lines.length, 2, JSON.stringify(lines));
  // the clock runs from RTC_BASE while SeaBIOS boots (~2 s): same minute, a few seconds on
  const match = /^cmos: 2026-11-26 08:15:(\d\d) \(bcd, 24h\)$/.exec(lines[0]);
  assert.ok(match, `time line ${JSON.stringify(lines[0])}`);
  const seconds = Number(match[1]);
  assert.ok(seconds >= 42 && seconds <= 59, `seconds ${seconds}`);
  // QEMU: (128 MiB - 16 MiB) / 64 KiB = 0x700
  assert.is(lines[1], 'cmos: mem above 16M: 0x700');
});

qemuTest('stringio: rep outsb to COM1, rep outsw/insb/insw at port 0x510', async () => {
  const lines = await boot(needQemu(), 'stringio');
  assert.is(lines.length, 3, JSON.stringify(lines));
  assert.is(lines[0], 'stringio: rep outsb ok');
  // Under QEMU 0x510 is the fw_cfg selector: the last word of the rep outsw (0x0000)
  // selects the signature, which rep insb then reads: "QEMU" and zeros past its end.
  assert.is(lines[1], 'stringio: insb 51 45 4d 55 00 00 00 00 00 00 00 00 00 00 00 00');
  assert.match(lines[2], /^stringio: insw( [0-9a-f]{4}){8}$/);
});

qemuTest('mmio: accesses of 1, 2, 4 and 8 bytes at 0xd0000000 complete', async () => {
  // QEMU has no device there, so only the shape of the output is meaningful
  const lines = await boot(needQemu(), 'mmio');
  assert.is(lines.length, 2, JSON.stringify(lines));
  assert.match(lines[0], /^mmio: read8 [0-9a-f]{2} read16 [0-9a-f]{4} read32 [0-9a-f]{8} read64 [0-9a-f]{16}$/);
  assert.match(lines[1], /^mmio: unclaimed [0-9a-f]{8}$/);
});

qemuTest('fault: triple-faults after saying so', async () => {
  assert.equal(await boot(needQemu(), 'fault'), ['fault: about to triple fault']);
});

test.run();

// Interrupts through the IOAPIC, proven twice: the irq-ioapic and pit guests
// (guests/, built by `make -C guests`) booted by QEMU with KVM, the reference
// VMM, and by tsvmm on /dev/kvm. Both guests mask the 8259s and route their
// ISA interrupt through an IOAPIC redirection entry to the local APIC:
// irq-ioapic COM1's IRQ 4 (pin 4, vector 0x34), pit the PIT's IRQ 0 on the
// pin the MP table names (QEMU/SeaBIOS: pin 2; tsvmm: pin 0, where KVM's
// default GSI routing delivers it). A guest that passes under QEMU and fails
// under tsvmm points at tsvmm. The QEMU half prints why it checked nothing
// when qemu-system-x86_64 is not installed, like qemu-guests.test.ts.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { explain, guest, runTsvmm } from '../support/tsvmm';

const QEMU = 'qemu-system-x86_64';
/** A guest runs in about 3 s under QEMU (mostly SeaBIOS); QEMU is killed after this long. */
const QEMU_TIMEOUT_MS = 30_000;
const QEMU_ARGS = ['-accel', 'kvm', '-M', 'pc', '-m', '128', '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio'];
/** SeaBIOS prints this (without a newline) just before it jumps to the guest's PVH entry. */
const SEABIOS_BANNER_END = 'Booting from ROM..';
const EXPECTED: Record<string, string> = {
  'irq-ioapic': 'irq-ioapic: 0123456789\nirq-ioapic: 10 interrupts on vector 0x34\n',
  pit: 'pit: 100 ticks\npit: rate ok\n',
};

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

function guestFile(name: string): string {
  const file = guest(name);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: build the guests with \`make -C guests\` (npm run build does)`);
  return file;
}

interface QemuRun {
  /** The guest's serial output: everything after SeaBIOS's banner, escape sequences removed. */
  output: string;
  status: number | null;
  timedOut: boolean;
  stderr: string;
}

function runQemu(qemu: string, name: string): Promise<QemuRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(qemu, [...QEMU_ARGS, '-kernel', guestFile(name)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, QEMU_TIMEOUT_MS);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      let output = Buffer.concat(stdout).toString('latin1').replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1bc/g, '');
      const banner = output.lastIndexOf(SEABIOS_BANNER_END);
      if (banner >= 0) output = output.slice(banner + SEABIOS_BANNER_END.length);
      resolve({ output, status, timedOut, stderr: Buffer.concat(stderr).toString('utf8') });
    });
  });
}

const qemu = which(QEMU);
if (!qemu) {
  test('IOAPIC guests under QEMU', () => {
    console.log(`not checked: ${QEMU} is not installed (apt-get install qemu-system-x86)`);
  });
}

for (const name of Object.keys(EXPECTED)) {
  if (qemu) {
    test(`${name} under QEMU (-M pc, KVM): the reference output`, async () => {
      const run = await runQemu(qemu, name);
      const context = `output ${JSON.stringify(run.output)}, stderr ${JSON.stringify(run.stderr)}`;
      assert.not.ok(run.timedOut, `QEMU still running after ${QEMU_TIMEOUT_MS} ms and killed; ${context}`);
      assert.is(run.status, 0, `QEMU exit status; ${context}`);
      assert.is(run.output, EXPECTED[name], context);
    });
  }

  for (const protocol of ['linux', 'pvh'] as const) {
    test(`${name} under tsvmm (in-kernel irqchip, ${protocol} entry): the same output as QEMU, exit 0`, async () => {
      const result = await runTsvmm(['--kernel', guestFile(name), '--boot-protocol', protocol]);
      assert.is(result.code, 0, explain(result));
      assert.is(result.stdout, EXPECTED[name], explain(result));
      assert.is(result.stderr, '', explain(result));
    });
  }

  test(`${name} under tsvmm --split-irqchip (userspace IOAPIC and PIT): the same output as QEMU, exit 0`, async () => {
    const result = await runTsvmm(['--split-irqchip', '--kernel', guestFile(name)]);
    assert.is(result.code, 0, explain(result));
    assert.is(result.stdout, EXPECTED[name], explain(result));
    assert.is(result.stderr, '', explain(result));
  });
}

test('pit with two vCPUs: IRQ 0 still reaches the boot CPU (APIC 0) on the MP table\'s pin', async () => {
  const result = await runTsvmm(['--kernel', guestFile('pit'), '--cpus', '2']);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, EXPECTED.pit, explain(result));
});

test.run();

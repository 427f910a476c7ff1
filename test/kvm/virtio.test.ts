// tsvmm's PCI root and virtio-pci devices driven by the virtio guests
// (guests/virtio-*), the same guests and the same expected lines as under
// QEMU (qemu-virtio-guests.test.ts): polling, MSI-X and INTx with both
// irqchips, malformed chains from a hostile driver, data on the image after a
// flush even when tsvmm is killed, and the --disk/--rng refusals.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { MAIN, explain, guest, runTsvmm } from '../support/tsvmm';
import { checkImage, guestSector, makeTempImage } from '../support/virtio-image';
import { Machine } from '../../src/main/vmm/machine';
import type { VirtioPciDevice } from '../../src/devices/virtio/pci-transport';
import { SERIAL, checkBlkLines, checkHostileLines, preamble, rngLines } from '../support/virtio-guests';

/** tsvmm gives the first PCI device GSI 9 and writes it into Interrupt Line; below 16 the guest uses the 8259. */
const TSVMM_INTX_LINE = /^virtio-blk: intx line 9 pin 1 via pic$/;
const GUEST_TIMEOUT_MS = 60_000;

function lines(stdout: string): string[] {
  const all = stdout.replace(/\r/g, '').split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

for (const irqchip of ['kernel', 'split'] as const) {
  const split = irqchip === 'split' ? ['--split-irqchip'] : [];
  test(`virtio-blk (${irqchip} irqchip): poll, MSI-X and INTx phases; the image holds what the guest wrote`, async () => {
    const { dir, image } = makeTempImage();
    try {
      const result = await runTsvmm(['--kernel', guest('virtio-blk'), ...split, '--disk', `path=${image},serial=${SERIAL}`], { timeoutMs: GUEST_TIMEOUT_MS });
      assert.is(result.code, 0, explain(result));
      const { bars, rest } = preamble('virtio-blk', lines(result.stdout));
      assert.equal(bars, ['virtio-blk: bar0 0xe0000000 size 0x8000 32-bit'], 'tsvmm assigns BAR0 from 0xe0000000');
      checkBlkLines(rest, true, TSVMM_INTX_LINE);
      assert.equal(checkImage(image), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('virtio-rng: two polled reads differ, then one by MSI-X', async () => {
  const result = await runTsvmm(['--kernel', guest('virtio-rng'), '--rng'], { timeoutMs: GUEST_TIMEOUT_MS });
  assert.is(result.code, 0, explain(result));
  assert.equal(preamble('virtio-rng', lines(result.stdout)).rest, rngLines(true));
});

for (const irqchip of ['kernel', 'split'] as const) {
  test(`virtio-rng (${irqchip} irqchip): its MSI-X vector goes out through an irqfd on an MSI route`, async () => {
    let serial = '';
    const machine = await Machine.create({ cpus: 1, memoryMiB: 128, bootProtocol: 'linux', irqchip, devices: [{ kind: 'rng', source: '/dev/urandom' }] }, {
      kernel: new Uint8Array(fs.readFileSync(guest('virtio-rng'))),
      serialOutput: (bytes) => { serial += Buffer.from(bytes).toString('latin1'); },
    });
    try {
      const exit = await machine.run();
      assert.is(exit.kind, 'reset', serial);
      assert.equal(preamble('virtio-rng', lines(serial)).rest, rngLines(true));
      assert.equal(machine.msiStats, { irqfdRoutes: 1, signalledWithoutIrqfd: 0 }, serial);
    } finally {
      await machine.close();
    }
  });
}

test('virtio-hostile: every malformed chain gets an error status or NEEDS_RESET, tsvmm lives, the device works after a reset', async () => {
  const { dir, image } = makeTempImage();
  try {
    const result = await runTsvmm(['--kernel', guest('virtio-hostile'), '--disk', `path=${image}`], { timeoutMs: GUEST_TIMEOUT_MS });
    assert.is(result.code, 0, explain(result));
    checkHostileLines(preamble('virtio-hostile', lines(result.stdout)).rest);
    assert.equal(checkImage(image, []), [], 'only reads: the image is as the test wrote it');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('data safety: what the guest wrote before a completed flush is in the file after SIGKILL', async () => {
  const { dir, image } = makeTempImage();
  try {
    const result = await runTsvmm(['--kernel', guest('virtio-blk'), '--disk', `path=${image},serial=${SERIAL}`], {
      timeoutMs: GUEST_TIMEOUT_MS,
      stopWhen: (stdout) => stdout.includes('virtio-blk: poll flush ok'),
      stopSignal: 'SIGKILL',
    });
    assert.is(result.signal, 'SIGKILL', explain(result));
    const bytes = fs.readFileSync(image);
    for (let sector = 8; sector < 16; sector++) {
      assert.ok(bytes.subarray(sector * 512, sector * 512 + 512).equals(guestSector(sector)), `sector ${sector} holds the flushed write`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Starts tsvmm on the echo guest (it waits for input for ever) with `diskOption`; resolves once the guest runs, with a stop function. */
async function holdImage(diskOption: string): Promise<{ stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [MAIN, '--kernel', guest('echo'), '--serial', 'stdio', '--disk', diskOption], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the echo guest did not start: ${out}`)), GUEST_TIMEOUT_MS);
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('latin1');
      if (out.includes('echo: ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { stop: () => { child.kill('SIGTERM'); return exited; } };
}

test('an image in use by another tsvmm is refused in one line; readonly=on lets readers share it', async () => {
  const { dir, image } = makeTempImage();
  try {
    const writer = await holdImage(`path=${image}`);
    const second = await runTsvmm(['--kernel', guest('hello'), '--disk', `path=${image}`]);
    const reader = await runTsvmm(['--kernel', guest('hello'), '--disk', `path=${image},readonly=on`]);
    assert.is(await writer.stop(), 143, 'the first tsvmm ran until it was stopped');
    assert.is(second.code, 2, explain(second));
    assert.is(second.stderr, `tsvmm: --disk path=${image} is in use by another process (it holds a lock on the image); stop it, or give readonly=on to both\n`);
    assert.is(reader.code, 2, `a reader is refused while a writer holds the image: ${explain(reader)}`);
    const sharedReader = await holdImage(`path=${image},readonly=on`);
    const secondReader = await runTsvmm(['--kernel', guest('hello'), '--disk', `path=${image},readonly=on`]);
    assert.is(await sharedReader.stop(), 143);
    assert.is(secondReader.code, 0, `two readers share the image: ${explain(secondReader)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('--disk and --rng refusals: one line, exit 2', async () => {
  const { dir, image } = makeTempImage();
  try {
    fs.chmodSync(image, 0o444);
    const cases: Array<[string[], RegExp]> = [
      [['--disk', 'path=/nonexistent.img'], /^tsvmm: --disk path=\/nonexistent.img: cannot open it \(ENOENT, no such file\)\n$/],
      [['--disk', 'file=x'], /^tsvmm: --disk: unknown key "file"; the keys are path, readonly, serial\n$/],
      [['--disk', 'readonly=on'], /^tsvmm: --disk needs path=FILE \(a raw disk image\)\n$/],
      [['--disk', `path=${image},readonly=maybe`], /^tsvmm: --disk: readonly takes on or off, got "maybe"\n$/],
      [['--disk', `path=${dir}`], /: cannot open it \(EISDIR\)\n$/],
      [['--disk', 'path=/dev/null'], /^tsvmm: --disk path=\/dev\/null is not a regular file; give a raw disk image\n$/],
      [['--disk', `path=${image},serial=a`, '--disk', `path=${image},serial=a`], /two disks have the serial "a"; give each its own\n$/],
      [['--disk', `path=${image},serial=${'x'.repeat(21)}`], /"devices\[0\]\.serial" must be at most 20 printable ASCII characters/],
      [['--rng', 'src=/nonexistent'], /^tsvmm: --rng src=\/nonexistent: cannot open it \(ENOENT\); give a readable file or device such as \/dev\/urandom\n$/],
      [['--rng', 'source=/dev/urandom'], /^tsvmm: --rng: unknown key "source"; the keys are src\n$/],
    ];
    if (process.getuid?.() !== 0) cases.push([['--disk', `path=${image}`], /cannot open it \(EACCES\); add readonly=on for a read-only image\n$/]);
    for (const [args, expected] of cases) {
      const result = await runTsvmm(['--kernel', guest('hello'), ...args]);
      assert.is(result.code, 2, `${args.join(' ')}: ${explain(result)}`);
      assert.match(result.stderr, expected, args.join(' '));
      assert.is(result.stderr.split('\n').length, 2, `one line: ${result.stderr}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('queue notifications reach virtio-blk through KVM_IOEVENTFD: none arrives as a forwarded MMIO write', async () => {
  const { dir, image } = makeTempImage();
  let output = '';
  const machine = await Machine.create({ cpus: 1, memoryMiB: 128, bootProtocol: 'linux', devices: [{ kind: 'disk', path: image, readonly: false, serial: SERIAL }] }, {
    kernel: new Uint8Array(fs.readFileSync(guest('virtio-blk'))),
    serialOutput: (bytes) => { output += Buffer.from(bytes).toString('latin1'); },
  });
  try {
    const exit = await machine.run();
    assert.equal(exit, { kind: 'reset', source: 'i8042' }, output);
    assert.ok(output.includes('virtio-blk: done'), output);
    const disk = machine.devices.device('disk0').model as VirtioPciDevice;
    assert.ok(disk.counters.notifications >= 10, `notifications ${disk.counters.notifications}`);
    assert.is(disk.counters.forwardedNotifications, 0, 'every notification was caught by an ioeventfd');
  } finally {
    await machine.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('virtio-console: the guest\'s hvc0 goes to --console file=PATH', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-console-'));
  try {
    const out = path.join(dir, 'hvc0');
    const result = await runTsvmm(['--kernel', guest('virtio-console'), '--console', `file=${out}`], { timeoutMs: GUEST_TIMEOUT_MS });
    assert.is(result.code, 0, explain(result));
    assert.equal(preamble('virtio-console', lines(result.stdout)).rest,
      ['virtio-console: transmit ok (16 bytes)', 'virtio-console: nothing received', 'virtio-console: done']);
    assert.is(fs.readFileSync(out, 'latin1'), 'hello from hvc0\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('virtio-console: host input reaches the guest\'s receive queue; its output reaches the host', async () => {
  let serial = '';
  let hvc0 = '';
  const machine = await Machine.create({ cpus: 1, memoryMiB: 128, bootProtocol: 'linux', devices: [{ kind: 'console' }] }, {
    kernel: new Uint8Array(fs.readFileSync(guest('virtio-console'))),
    serialOutput: (bytes) => { serial += Buffer.from(bytes).toString('latin1'); },
    consoleOutput: (bytes) => { hvc0 += Buffer.from(bytes).toString('latin1'); },
  });
  try {
    // Typed before the guest posts a receive buffer: held until it does.
    assert.is(machine.sendConsoleInput(new TextEncoder().encode('typed input\n')), 12);
    const exit = await machine.run();
    assert.equal(exit, { kind: 'reset', source: 'i8042' }, serial);
    assert.equal(preamble('virtio-console', lines(serial)).rest,
      ['virtio-console: transmit ok (16 bytes)', 'virtio-console: received 12 bytes "typed input."', 'virtio-console: done']);
    assert.is(hvc0, 'hello from hvc0\n');
  } finally {
    await machine.close();
  }
});

test('virtio-console: with --console tty the terminal\'s input goes to hvc0 (COM1 in a file), and hvc0 to stdout', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-console-'));
  try {
    const com1 = path.join(dir, 'com1');
    // stdin is a pipe holding the line from the start (the guest's receive window is short here)
    const result = spawnSync(process.execPath, [MAIN, '--kernel', guest('virtio-console'), '--console', 'tty', '--serial', `file:${com1}`],
      { input: 'typed on stdin\n', encoding: 'latin1', timeout: GUEST_TIMEOUT_MS });
    const context = `exit ${result.status}, stdout ${JSON.stringify(result.stdout)}, stderr ${JSON.stringify(result.stderr)}`;
    assert.is(result.status, 0, context);
    assert.is(result.stdout, 'hello from hvc0\n', context);
    assert.equal(preamble('virtio-console', lines(fs.readFileSync(com1, 'latin1'))).rest,
      ['virtio-console: transmit ok (16 bytes)', 'virtio-console: received 15 bytes "typed on stdin."', 'virtio-console: done']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('virtio-console: consoleInputQueue holds what the device cannot take yet and calls back once it is all in', async () => {
  const machine = await Machine.create({ cpus: 1, memoryMiB: 128, bootProtocol: 'linux', devices: [{ kind: 'console' }] }, {
    kernel: new Uint8Array(fs.readFileSync(guest('virtio-console'))),
  });
  try {
    const queue = machine.consoleInputQueue();
    let spaces = 0;
    queue.onInputSpace(() => spaces++);
    // 64 KiB fit in the device's holding area before the guest runs; the rest is held here.
    assert.is(queue.sendInput(new Uint8Array(64 * 1024).fill(0x61)), true);
    assert.is(queue.sendInput(Uint8Array.of(0x62)), false);
    assert.is(queue.sendInput(Uint8Array.of(0x63)), false);
    assert.is(spaces, 0);
    const exit = await machine.run();
    assert.is(exit.kind, 'reset');
    // The guest's four 64-byte receive buffers make room for both held bytes: one call back.
    assert.is(spaces, 1);
  } finally {
    await machine.close();
  }
});

test.run();

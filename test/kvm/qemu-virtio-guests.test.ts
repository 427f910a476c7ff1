// The virtio guests (guests/virtio-*) under QEMU with KVM, against QEMU's
// modern-only virtio-pci devices (disable-legacy=on): QEMU is the reference,
// so these prove the guests' drivers before they test tsvmm's devices. Lines
// that name a slot or a BAR address differ between VMMs and are matched by
// pattern; every other line is exact. After virtio-blk, the disk image must
// hold the guest pattern in sectors 8-17 and the image pattern elsewhere
// (test/support/virtio-image.ts). Not checked, with the reason printed, when
// qemu-system-x86_64 is not installed.

import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { QEMU_MISSING, QEMU_TIMEOUT_MS, findQemu, runQemu } from '../support/qemu';
import { guest } from '../support/tsvmm';
import { checkImage, makeTempImage } from '../support/virtio-image';

const SERIAL = 'tsvmm-test-1';
const HELLO = 'hello from hvc0\n';
const INPUT = 'typed input\n';

/** Boots `name` under QEMU, asserts it reset by itself, and returns its lines. */
async function boot(qemu: string, name: string, extraArgs: string[]): Promise<string[]> {
  const run = await runQemu(qemu, guest(name), extraArgs);
  const context = `${name} ${extraArgs.join(' ')}: output ${JSON.stringify(run.output)}, stderr ${JSON.stringify(run.stderr)}`;
  assert.not.ok(run.timedOut, `QEMU still running after ${QEMU_TIMEOUT_MS} ms and killed; ${context}`);
  assert.is(run.status, 0, `QEMU exit status; ${context}`);
  return run.lines;
}

interface Preamble {
  bars: string[];
  rest: string[];
}

/** Checks the lines every virtio guest starts with ("found at 00:SS.F", then one per BAR) and returns them apart from the rest. */
function preamble(name: string, lines: string[]): Preamble {
  assert.match(lines[0] ?? '', new RegExp(`^${name}: found at 00:[0-9a-f]{2}\\.[0-7]$`), JSON.stringify(lines));
  const bar = new RegExp(`^${name}: bar[0-5] 0x[0-9a-f]+ size 0x[0-9a-f]+ (32|64)-bit( assigned)?( mapped above 4 GiB)?$`);
  let i = 1;
  while (i < lines.length && bar.test(lines[i])) i++;
  assert.ok(i > 1, `no BAR lines: ${JSON.stringify(lines)}`);
  return { bars: lines.slice(1, i), rest: lines.slice(i) };
}

const blkDrive = (image: string, device = ''): string[] => [
  '-drive', `file=${image},if=none,id=d0,format=raw`,
  '-device', `virtio-blk-pci,drive=d0,disable-legacy=on,serial=${SERIAL}${device}`,
];

const BLK_POLL = [
  'virtio-blk: features version_1 event_idx indirect_desc blk_size flush',
  'virtio-blk: capacity 2048 sectors, blk_size 512',
  'virtio-blk: poll read ok',
  'virtio-blk: poll write ok',
  'virtio-blk: poll flush ok',
  'virtio-blk: poll read back ok',
  `virtio-blk: serial ${SERIAL}`,
  'virtio-blk: poll indirect read ok',
  'virtio-blk: poll 8 in flight ok',
];
const BLK_MSIX = [
  'virtio-blk: msix table size 2',
  'virtio-blk: msix write ok',
  'virtio-blk: msix read ok',
  'virtio-blk: msix 2 interrupts',
  'virtio-blk: msix used ring ok',
];

/** Checks virtio-blk's lines after the preamble; `msix` false for a device without MSI-X. */
function checkBlkLines(rest: string[], msix: boolean): void {
  const all = JSON.stringify(rest);
  assert.match(rest[0] ?? '', /^virtio-blk: offered 0x[0-9a-f]+ negotiated 0x[0-9a-f]+$/, all);
  assert.equal(rest.slice(1, 1 + BLK_POLL.length), BLK_POLL, all);
  let i = 1 + BLK_POLL.length;
  // QEMU signals the first used buffer after a reset even when used_event says not to
  // (virtio_should_notify: !signalled_used_valid), so ISR may read 1 here
  assert.match(rest[i++] ?? '', /^virtio-blk: poll isr 0x0[01]$/, all);
  const msixLines = msix ? BLK_MSIX : ['virtio-blk: msix not available'];
  assert.equal(rest.slice(i, i + msixLines.length), msixLines, all);
  i += msixLines.length;
  // SeaBIOS routes PCI INTx of -M pc to IRQ 10 or 11 through the PIIX3 PIRQ links
  assert.match(rest[i++] ?? '', /^virtio-blk: intx line 1[01] pin 1 via pic$/, all);
  assert.equal(rest.slice(i), ['virtio-blk: intx ok', 'virtio-blk: done'], all);
}

const qemu = findQemu();
const qemuTest = qemu ? test : () => undefined;
const needQemu = (): string => qemu as string;

if (!qemu) {
  test('QEMU virtio guests', () => {
    console.log(QEMU_MISSING);
  });
}

qemuTest('virtio-blk: poll, MSI-X and INTx phases against QEMU virtio-blk-pci; the image holds what the guest wrote', async () => {
  const { dir, image } = makeTempImage();
  try {
    const { bars, rest } = preamble('virtio-blk', await boot(needQemu(), 'virtio-blk', blkDrive(image)));
    // QEMU: the virtio structures in the 64-bit BAR4, the MSI-X table in BAR1
    assert.equal(bars.map((l) => l.split(' ')[1]), ['bar4', 'bar1']);
    checkBlkLines(rest, true);
    assert.equal(checkImage(image), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

qemuTest('virtio-blk: without MSI-X (vectors=0) the guest says so and still does INTx', async () => {
  const { dir, image } = makeTempImage();
  try {
    const { bars, rest } = preamble('virtio-blk', await boot(needQemu(), 'virtio-blk', blkDrive(image, ',vectors=0')));
    assert.is(bars.length, 1, JSON.stringify(bars));
    checkBlkLines(rest, false);
    // the MSI-X phase writes sector 16; without MSI-X it does not run
    assert.equal(checkImage(image, [8, 9, 10, 11, 12, 13, 14, 15, 17]), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

qemuTest('virtio-blk: a 64-bit BAR that SeaBIOS puts above 4 GiB is mapped by the guest', async () => {
  // a 2 GiB ivshmem BAR does not fit beside the rest below 4 GiB, so SeaBIOS moves every
  // 64-bit BAR (virtio's BAR4 too) above 4 GiB; the backing RAM is never touched
  const { dir, image } = makeTempImage();
  try {
    const extra = ['-object', 'memory-backend-ram,id=m1,size=2G', '-device', 'ivshmem-plain,memdev=m1', ...blkDrive(image)];
    const { bars, rest } = preamble('virtio-blk', await boot(needQemu(), 'virtio-blk', extra));
    const bar4 = bars.find((l) => l.startsWith('virtio-blk: bar4 '));
    assert.match(bar4 ?? '', /^virtio-blk: bar4 0x[1-9a-f][0-9a-f]{8,} size 0x4000 64-bit mapped above 4 GiB$/, JSON.stringify(bars));
    checkBlkLines(rest, true);
    assert.equal(checkImage(image), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

for (const vectors of ['', ',vectors=0']) {
  qemuTest(`virtio-rng: two polled reads differ${vectors ? ', no MSI-X' : ', then one by MSI-X'}`, async () => {
    const { rest } = preamble('virtio-rng', await boot(needQemu(), 'virtio-rng', ['-device', `virtio-rng-pci,disable-legacy=on${vectors}`]));
    assert.equal(rest, [
      'virtio-rng: poll read 64 bytes',
      'virtio-rng: poll read 64 bytes',
      'virtio-rng: reads differ and are not zero',
      ...(vectors ? ['virtio-rng: msix not available'] : ['virtio-rng: msix read 64 bytes', 'virtio-rng: msix 1 interrupts']),
      'virtio-rng: done',
    ]);
  });
}

qemuTest('virtio-console: transmits to a chardev file; nothing to receive', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-virtio-'));
  try {
    const out = path.join(dir, 'hvc0.out');
    const extra = ['-device', 'virtio-serial-pci,disable-legacy=on', '-chardev', `file,id=c0,path=${out}`, '-device', 'virtconsole,chardev=c0'];
    const { rest } = preamble('virtio-console', await boot(needQemu(), 'virtio-console', extra));
    assert.equal(rest, ['virtio-console: transmit ok (16 bytes)', 'virtio-console: nothing received', 'virtio-console: done']);
    assert.is(fs.readFileSync(out, 'latin1'), HELLO);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Connects to the Unix socket QEMU listens on (retrying while QEMU starts), sends `input`, and collects what comes back. */
function talk(socketPath: string, input: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    let tries = 0;
    const attempt = (): void => {
      const s = net.createConnection(socketPath);
      let connected = false;
      s.on('connect', () => {
        connected = true;
        s.write(input);
      });
      s.on('data', (chunk: Buffer) => { received += chunk.toString('latin1'); });
      // a failed attempt closes too: only the connected socket's close (QEMU exiting) ends the talk
      s.on('close', () => { if (connected) resolve(received); });
      s.on('error', (error: NodeJS.ErrnoException) => {
        if (!connected && (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') && ++tries < 200) setTimeout(attempt, 25);
        else if (!connected) reject(error);
      });
    };
    attempt();
  });
}

qemuTest('virtio-console: transmits to and receives from a chardev socket', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-virtio-'));
  try {
    const sock = path.join(dir, 'hvc0.sock');
    const extra = ['-device', 'virtio-serial-pci,disable-legacy=on', '-chardev', `socket,id=c0,path=${sock},server=on,wait=off`, '-device', 'virtconsole,chardev=c0'];
    const [lines, host] = await Promise.all([boot(needQemu(), 'virtio-console', extra), talk(sock, INPUT)]);
    const { rest } = preamble('virtio-console', lines);
    assert.equal(rest, ['virtio-console: transmit ok (16 bytes)', 'virtio-console: received 12 bytes "typed input."', 'virtio-console: done']);
    assert.is(host, HELLO);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const HOSTILE_CASES = ['out-of-ram-address', 'descriptor-loop', 'chain-too-long', 'length-overflow', 'writable-header', 'indirect-bad-length'];

qemuTest('virtio-hostile: every malformed chain gets an error status or NEEDS_RESET, and the device works after a reset', async () => {
  const { dir, image } = makeTempImage();
  try {
    const { rest } = preamble('virtio-hostile', await boot(needQemu(), 'virtio-hostile', blkDrive(image)));
    const all = JSON.stringify(rest);
    assert.is(rest[0], 'virtio-hostile: baseline read ok', all);
    assert.is(rest.length, 2 + 2 * HOSTILE_CASES.length, all);
    HOSTILE_CASES.forEach((name, k) => {
      assert.match(rest[1 + 2 * k], new RegExp(`^virtio-hostile: ${name}: (needs reset|status 1 \\(ioerr\\)|status 2 \\(unsupp\\))$`), all);
      assert.is(rest[2 + 2 * k], `virtio-hostile: ${name}: works after reset`, all);
    });
    assert.is(rest[rest.length - 1], 'virtio-hostile: done', all);
    // only reads: the image is as the test wrote it
    assert.equal(checkImage(image, []), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

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
import { QEMU_MISSING, bootQemu, findQemu } from '../support/qemu';
import { checkImage, makeTempImage } from '../support/virtio-image';
import { blkDrive, checkBlkLines, checkHostileLines, preamble, rngLines } from '../support/virtio-guests';

const HELLO = 'hello from hvc0\n';
const INPUT = 'typed input\n';

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
    const { bars, rest } = preamble('virtio-blk', await bootQemu(needQemu(), 'virtio-blk', blkDrive(image)));
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
    const { bars, rest } = preamble('virtio-blk', await bootQemu(needQemu(), 'virtio-blk', blkDrive(image, ',vectors=0')));
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
    const { bars, rest } = preamble('virtio-blk', await bootQemu(needQemu(), 'virtio-blk', extra));
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
    const { rest } = preamble('virtio-rng', await bootQemu(needQemu(), 'virtio-rng', ['-device', `virtio-rng-pci,disable-legacy=on${vectors}`]));
    assert.equal(rest, rngLines(!vectors));
  });
}

qemuTest('virtio-console: transmits to a chardev file; nothing to receive', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-virtio-'));
  try {
    const out = path.join(dir, 'hvc0.out');
    const extra = ['-device', 'virtio-serial-pci,disable-legacy=on', '-chardev', `file,id=c0,path=${out}`, '-device', 'virtconsole,chardev=c0'];
    const { rest } = preamble('virtio-console', await bootQemu(needQemu(), 'virtio-console', extra));
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
    const [lines, host] = await Promise.all([bootQemu(needQemu(), 'virtio-console', extra), talk(sock, INPUT)]);
    const { rest } = preamble('virtio-console', lines);
    assert.equal(rest, ['virtio-console: transmit ok (16 bytes)', 'virtio-console: received 12 bytes "typed input."', 'virtio-console: done']);
    assert.is(host, HELLO);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

qemuTest('virtio-hostile: every malformed chain gets an error status or NEEDS_RESET, and the device works after a reset', async () => {
  const { dir, image } = makeTempImage();
  try {
    const { rest } = preamble('virtio-hostile', await bootQemu(needQemu(), 'virtio-hostile', blkDrive(image)));
    checkHostileLines(rest);
    // only reads: the image is as the test wrote it
    assert.equal(checkImage(image, []), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

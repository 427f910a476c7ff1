// readInputFile: regular files only, at most the guest RAM, never blocking on
// a FIFO, and no fd left open whatever happens.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError } from '../../../../src/main/cli/args';
import { readInputFile } from '../../../../src/main/cli/input-files';

const MIB = 1024 * 1024;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-input-'));
const openFds = () => fs.readdirSync('/proc/self/fd').length;

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.instance(error, UsageError);
    return (error as Error).message;
  }
  throw new Error('expected a UsageError');
}

test('a regular file is read whole', () => {
  const file = path.join(dir, 'kernel');
  const data = Uint8Array.from({ length: 100_000 }, (_, i) => i & 0xff);
  fs.writeFileSync(file, data);
  assert.equal(readInputFile('kernel', file, MIB), data);
});

test('/dev/zero and /dev/urandom are refused as character devices, at once', () => {
  assert.is(refusal(() => readInputFile('kernel', '/dev/zero', 256 * MIB)),
    'cannot read kernel /dev/zero: it is a character device, not a regular file; pass the kernel image file');
  assert.match(refusal(() => readInputFile('initrd', '/dev/urandom', 256 * MIB)), /initrd \/dev\/urandom: it is a character device/);
});

test('a FIFO nobody writes is refused without blocking', () => {
  const fifo = path.join(dir, 'fifo');
  assert.is(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  assert.is(refusal(() => readInputFile('kernel', fifo, MIB)), `cannot read kernel ${fifo}: it is a FIFO, not a regular file; pass the kernel image file`);
});

test('a directory, a missing file and an unreadable one are refused with the reason', () => {
  assert.match(refusal(() => readInputFile('kernel', dir, MIB)), /it is a directory, not a regular file/);
  assert.is(refusal(() => readInputFile('initrd', path.join(dir, 'missing'), MIB)), `cannot read initrd ${path.join(dir, 'missing')}: ENOENT (no such file)`);
});

test('a file larger than guest RAM is refused before reading it', () => {
  const file = path.join(dir, 'huge');
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, 300 * MIB); // sparse: costs no disk
  fs.closeSync(fd);
  assert.is(refusal(() => readInputFile('initrd', file, 256 * MIB)),
    `the initrd ${file} is 300.0 MiB, more than the 256.0 MiB of guest RAM it must fit in; give the guest more memory (--mem) or pass a smaller file`);
});

test('no fd is left open by a read or by any refusal', () => {
  const before = openFds();
  const file = path.join(dir, 'kernel');
  for (let i = 0; i < 50; i++) {
    readInputFile('kernel', file, MIB);
    try { readInputFile('kernel', '/dev/zero', MIB); } catch { /* refused */ }
    try { readInputFile('kernel', path.join(dir, 'huge'), MIB); } catch { /* refused */ }
  }
  assert.is(openFds(), before);
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));
test.run();

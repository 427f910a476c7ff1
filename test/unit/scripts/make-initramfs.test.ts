// scripts/make-initramfs.sh: refuses without its tools, naming the Debian
// package of each; refuses a dynamic busybox; never leaves a small broken
// image (a cpio that writes nothing); and, with busybox-static and cpio
// present (npm run setup installs them), makes an image holding /init and
// busybox. Without them that last part passes with "not checked".

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT } from '../../support/tsvmm';

const SCRIPT = path.join(ROOT, 'scripts', 'make-initramfs.sh');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-initramfs-'));

function which(command: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/** A PATH of only these host tools (symlinked into a fresh directory), plus the fake tools given as shell scripts. */
function pathWith(tools: string[], fakes: Record<string, string> = {}): string {
  const dir = fs.mkdtempSync(path.join(tmp, 'bin-'));
  for (const tool of tools) {
    const real = which(tool);
    if (real) fs.symlinkSync(real, path.join(dir, tool));
  }
  for (const [name, body] of Object.entries(fakes)) fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return dir;
}

function make(output: string, env: NodeJS.ProcessEnv = {}) {
  return spawnSync('bash', [SCRIPT, output], { encoding: 'utf8', env: { ...process.env, ...env } });
}

const COREUTILS = ['bash', 'sed', 'mktemp', 'mkdir', 'cp', 'cat', 'chmod', 'id', 'find', 'sort', 'stat', 'grep', 'rm', 'mv', 'mknod', 'ldd', 'sh'];
const busybox = which('busybox');
const staticBusybox = busybox !== undefined && spawnSync('ldd', [busybox]).status !== 0;

test('without cpio and busybox: one line naming both apt packages, exit 1, no image', () => {
  const output = path.join(tmp, 'none.cpio.gz');
  const result = make(output, { PATH: pathWith([...COREUTILS, 'gzip']) });
  assert.is(result.status, 1, result.stderr);
  assert.is(result.stderr, 'make-initramfs: missing cpio (apt-get install cpio); busybox (apt-get install busybox-static)\n');
  assert.not.ok(fs.existsSync(output));
});

test('a dynamically linked busybox is refused, naming busybox-static', () => {
  const output = path.join(tmp, 'dynamic.cpio.gz');
  const result = make(output, { BUSYBOX: '/bin/ls' });
  assert.is(result.status, 1, result.stderr);
  assert.match(result.stderr, /a static busybox: \/bin\/ls is dynamically linked \(apt-get install busybox-static, which replaces it\)/);
  assert.not.ok(fs.existsSync(output));
});

test('a cpio that writes nothing (the 20-byte image of the old recipe) is caught: exit 1, nothing left behind', () => {
  if (!staticBusybox) {
    console.log('not checked: no static busybox here (apt-get install busybox-static, or npm run setup)');
    return;
  }
  const output = path.join(tmp, 'broken.cpio.gz');
  const result = make(output, { PATH: pathWith([...COREUTILS, 'gzip', 'busybox'], { cpio: 'cat > /dev/null; exit 0' }) });
  assert.is(result.status, 1, result.stderr);
  assert.match(result.stderr, /^make-initramfs: the image came out wrong \(\d+ bytes; .*\); nothing written to .*broken\.cpio\.gz\n$/);
  assert.not.ok(fs.existsSync(output));
  assert.equal(fs.readdirSync(tmp).filter((name) => name.startsWith('broken')), [], 'no temporary file either');
});

test('with busybox-static, cpio and gzip: an image holding /init (a busybox shell script) and bin/busybox', () => {
  if (!staticBusybox || !which('cpio')) {
    console.log('not checked: busybox-static or cpio is missing here (npm run setup installs them)');
    return;
  }
  const output = path.join(tmp, 'initramfs.cpio.gz');
  const result = make(output);
  assert.is(result.status, 0, result.stderr);
  assert.match(result.stdout, /^make-initramfs: .*initramfs\.cpio\.gz \(\d+ bytes\): \/init runs a busybox shell on ttyS0; boot it with --initrd .* --cmdline rdinit=\/init\n$/);
  const listing = spawnSync('sh', ['-c', 'gzip -dc "$1" | cpio --quiet -t', 'list', output], { encoding: 'utf8' }).stdout.split('\n');
  for (const entry of ['init', 'bin/busybox', 'dev', 'proc', 'sys']) assert.ok(listing.includes(entry), `${entry} in ${listing.join(' ')}`);
  const init = spawnSync('sh', ['-c', 'gzip -dc "$1" | cpio --quiet -i --to-stdout init', 'extract', output], { encoding: 'utf8' }).stdout;
  assert.match(init, /^#!\/bin\/busybox sh\n/);
  assert.match(init, /mount -t devtmpfs devtmpfs \/dev/);
  assert.ok(fs.statSync(output).size > fs.statSync(busybox!).size / 4);
});

test.run();

// The README's real-Linux recipe, proven where a stock kernel can run on this
// project's hosts: QEMU without KVM (TCG, software emulation; under nested
// PVM KVM a stock kernel dies early, see KVM-ON-THIS-MACHINE.md). The image
// from scripts/make-initramfs.sh, on the Debian kernel the tests use
// (npm run fetch-kernel), must reach its busybox shell, which answers a
// command, and reboot -f must end the VM. "not checked" without QEMU,
// busybox-static, cpio or the kernel.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { debianKernel } from '../fixtures/debian-kernel';
import { findQemu, stripTerminal } from '../support/qemu';
import { ROOT } from '../support/tsvmm';

/** TCG boots the Debian kernel to /init in ~30 s here; a stuck boot is killed after this long. */
const BOOT_TIMEOUT_MS = 240_000;

test('make-initramfs image + Debian kernel under QEMU TCG: /init\'s banner, a shell that answers, reboot -f ends it', async () => {
  const qemu = findQemu();
  const kernel = await debianKernel();
  if (!qemu || 'skip' in kernel) {
    console.log(`not checked: ${!qemu ? 'qemu-system-x86_64 is not installed (npm run setup)' : (kernel as { skip: string }).skip}`);
    return;
  }
  const image = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-initramfs-')), 'initramfs.cpio.gz');
  const made = spawnSync('bash', [path.join(ROOT, 'scripts', 'make-initramfs.sh'), image], { encoding: 'utf8' });
  if (made.status !== 0 && /missing/.test(made.stderr)) {
    console.log(`not checked: ${made.stderr.trim()}`);
    return;
  }
  assert.is(made.status, 0, made.stderr);

  const child = spawn(qemu, ['-accel', 'tcg', '-M', 'pc', '-m', '512', '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
    '-kernel', kernel.vmlinuz, '-initrd', image, '-append', 'console=ttyS0 rdinit=/init panic=-1 reboot=k quiet'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  let asked = false;
  let rebooting = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), BOOT_TIMEOUT_MS);
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString('latin1');
    const text = stripTerminal(output);
    if (!asked && /\/ # $/.test(text)) {
      asked = true;
      child.stdin.write('echo "shell: $((6 * 7))"\n');
    } else if (!rebooting && text.includes('shell: 42')) {
      rebooting = true;
      child.stdin.write('reboot -f\n');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  const text = stripTerminal(output);
  assert.match(text, /initramfs: Linux \d+\.\d+\.\d+-\S+, busybox shell on the console; reboot -f ends tsvmm \(exit 0\)\n/, text.slice(-3000));
  assert.match(text, /\nshell: 42\n/, text.slice(-3000));
  assert.is(code, 0, 'reboot -f reset the VM, which -no-reboot turns into a clean exit');
});

test.run();

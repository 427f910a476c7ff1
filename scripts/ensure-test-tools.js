#!/usr/bin/env node
// npm run setup (npm test installs nothing): installs the Debian packages the
// test suite uses for cross-checks, when they are missing and this is a root
// shell on a Debian machine: QEMU (the reference VMM that proves the test
// guests right), xz (to extract the Debian kernel), busybox-static and cpio
// (scripts/make-initramfs.sh), and for firmware boots SeaBIOS, grub-pc-bin,
// dosfstools and mtools (scripts/make-disk-images.sh). Without them those
// tests say "not checked".
'use strict';
const { spawnSync } = require('node:child_process');

const wanted = [
  { command: 'qemu-system-x86_64', pkg: 'qemu-system-x86' },
  { command: 'xz', pkg: 'xz-utils' },
  // scripts/make-initramfs.sh and its tests.
  { command: 'busybox', pkg: 'busybox-static' },
  { command: 'cpio', pkg: 'cpio' },
  // Firmware boots (scripts/make-disk-images.sh's grub.img, and the firmware itself).
  { file: '/usr/share/seabios/bios.bin', pkg: 'seabios' },
  { file: '/usr/lib/grub/i386-pc/boot.img', pkg: 'grub-pc-bin' },
  { command: 'mkfs.vfat', pkg: 'dosfstools' },
  { command: 'mcopy', pkg: 'mtools' },
];

const fs = require('node:fs');
const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const missing = wanted.filter(({ command, file }) => (file ? !fs.existsSync(file) : !has(command))).map(({ pkg }) => pkg);
if (missing.length === 0) process.exit(0);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot || !has('apt-get')) {
  console.log(`test tools: ${missing.join(', ')} missing and cannot be installed here (needs root and apt-get); their cross-checks will say "not checked"`);
  process.exit(0);
}
console.log(`test tools: installing ${missing.join(', ')} with apt-get`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
const install = update.status === 0
  ? spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { stdio: 'inherit', env })
  : update;
if (install.status !== 0) console.log(`test tools: apt-get could not install ${missing.join(', ')}; their cross-checks will say "not checked"`);

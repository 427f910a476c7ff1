#!/usr/bin/env node
// npm run fetch-kernel: Debian's x86_64 kernel, the one the tests boot, into
// .cache/debian-kernel/ (git ignores it), then prints the ELF vmlinux's path.
// Fetched once with apt (the package linux-image-amd64 depends on); the .deb
// is ~100 MB, so later runs reuse the cached vmlinuz and the vmlinux
// extracted from its XZ payload. test/fixtures/debian-kernel.ts calls the
// same debianKernel() below.
'use strict';
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { promisify } = require('node:util');

const run = promisify(execFile);

/** The meta package that always depends on Debian's current default kernel image. */
const META_PACKAGE = 'linux-image-amd64';
/** Start of an XZ container (".7zXZ\0"); the bzImage payload of a Debian kernel is one XZ stream. */
const XZ_MAGIC = Uint8Array.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
/** First bytes of an ELF file: what the decompressed payload must be. */
const ELF_MAGIC = Uint8Array.from([0x7f, 0x45, 0x4c, 0x46]);
/** Records which kernel the cache holds, written last so a half-filled cache is never trusted. */
const MANIFEST = 'kernel.json';
/** apt and dpkg print a lot for a large package; keep all of it for the error message. */
const MAX_TOOL_OUTPUT = 64 * 1024 * 1024;
const ROOT = path.resolve(__dirname, '..');
/** TSVMM_KERNEL_CACHE moves the cache (a shared disk, a CI cache directory). */
const CACHE_DIR = process.env.TSVMM_KERNEL_CACHE ? path.resolve(process.env.TSVMM_KERNEL_CACHE) : path.join(ROOT, '.cache', 'debian-kernel');

class DebianKernelError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DebianKernelError';
  }
}

/**
 * The cached kernel ({ vmlinuz, vmlinux, version }), fetched first if need
 * be, or { skip } saying why it cannot be. `notice(text)` hears what takes
 * long before it starts (the download: which package, how big).
 */
async function debianKernel(notice = () => {}) {
  const cached = readManifest(CACHE_DIR);
  if (cached !== undefined) return cached;

  for (const command of ['apt-get', 'dpkg-deb', 'xz']) {
    if (!(await commandExists(command))) {
      return { skip: `${command} is not installed, so the Debian kernel cannot be fetched${command === 'xz' ? ' (apt-get install xz-utils, or npm run setup)' : ''}` };
    }
  }
  fs.mkdirSync(CACHE_DIR, { recursive: true });
  const work = fs.mkdtempSync(path.join(CACHE_DIR, 'work-'));
  try {
    const packageName = await resolveKernelPackage(notice);
    const size = await packageSize(packageName);
    const into = CACHE_DIR.startsWith(ROOT + path.sep) ? path.relative(ROOT, CACHE_DIR) : CACHE_DIR;
    notice(`debian kernel: downloading ${packageName}${size ? ` (${(size / 1e6).toFixed(0)} MB)` : ''} with apt-get into ${into}/, `
      + 'once (later runs use the cache); a minute or two');
    await tool('apt-get', ['download', packageName], work);
    const deb = fs.readdirSync(work).find((name) => name.endsWith('.deb'));
    if (deb === undefined) throw new DebianKernelError(`apt-get download ${packageName} left no .deb in ${work}`);

    // Only /boot is needed; unpacking the whole package would write ~400 MB of modules.
    const unpacked = path.join(work, 'root');
    fs.mkdirSync(unpacked);
    await tool('bash', ['-o', 'pipefail', '-c', 'dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "./boot/vmlinuz-*"', 'extract', path.join(work, deb), unpacked], work);
    const bootDir = path.join(unpacked, 'boot');
    const vmlinuzName = fs.readdirSync(bootDir).find((name) => name.startsWith('vmlinuz-'));
    if (vmlinuzName === undefined) throw new DebianKernelError(`${deb} has no /boot/vmlinuz-*`);
    const version = vmlinuzName.slice('vmlinuz-'.length);

    const vmlinuz = path.join(CACHE_DIR, vmlinuzName);
    const vmlinux = path.join(CACHE_DIR, `vmlinux-${version}`);
    fs.copyFileSync(path.join(bootDir, vmlinuzName), vmlinuz);
    await extractVmlinux(vmlinuz, vmlinux, work);

    const kernel = { vmlinuz, vmlinux, version };
    fs.writeFileSync(path.join(CACHE_DIR, MANIFEST), JSON.stringify(kernel, null, 2));
    return kernel;
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function readManifest(cacheDir) {
  const file = path.join(cacheDir, MANIFEST);
  if (!fs.existsSync(file)) return undefined;
  const kernel = JSON.parse(fs.readFileSync(file, 'utf8'));
  return fs.existsSync(kernel.vmlinuz) && fs.existsSync(kernel.vmlinux) ? kernel : undefined;
}

async function commandExists(command) {
  try {
    await run('sh', ['-c', `command -v ${command}`]);
    return true;
  } catch {
    return false;
  }
}

/** The versioned image package, e.g. linux-image-6.1.0-56-amd64; refreshes apt's lists once if apt knows nothing. */
async function resolveKernelPackage(notice) {
  const dependency = async () => {
    try {
      const { stdout } = await run('apt-cache', ['depends', META_PACKAGE], { maxBuffer: MAX_TOOL_OUTPUT });
      return stdout.match(/^\s*Depends:\s*(linux-image-\S+)/m)?.[1];
    } catch {
      return undefined;
    }
  };
  const known = await dependency();
  if (known !== undefined) return known;
  notice('debian kernel: apt knows no kernel package yet; running apt-get update');
  await tool('apt-get', ['update'], undefined);
  const refreshed = await dependency();
  if (refreshed === undefined) {
    throw new DebianKernelError(`apt-cache knows no package that ${META_PACKAGE} depends on, even after apt-get update; check /etc/apt/sources.list`);
  }
  return refreshed;
}

/** The .deb's size in bytes as apt's lists give it, or undefined. */
async function packageSize(packageName) {
  try {
    const { stdout } = await run('apt-cache', ['show', '--no-all-versions', packageName], { maxBuffer: MAX_TOOL_OUTPUT });
    const size = Number(stdout.match(/^Size:\s*(\d+)/m)?.[1]);
    return Number.isFinite(size) && size > 0 ? size : undefined;
  } catch {
    return undefined;
  }
}

/** Decompresses the XZ stream inside the bzImage into an ELF file; bytes after the stream are ignored. */
async function extractVmlinux(vmlinuz, vmlinux, work) {
  const image = fs.readFileSync(vmlinuz);
  const start = image.indexOf(XZ_MAGIC);
  if (start < 0) throw new DebianKernelError(`${vmlinuz} contains no XZ stream (magic fd 37 7a 58 5a 00); is it XZ-compressed?`);
  const payload = path.join(work, 'payload.xz');
  fs.writeFileSync(payload, image.subarray(start));
  // --single-stream stops after the first stream, so the bzImage's trailing bytes are not an error.
  await tool('sh', ['-c', 'xz -dc --single-stream "$1" > "$2"', 'xz', payload, vmlinux], work);
  const head = Buffer.alloc(ELF_MAGIC.length);
  const fd = fs.openSync(vmlinux, 'r');
  try {
    fs.readSync(fd, head, 0, head.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (!head.equals(ELF_MAGIC)) {
    fs.rmSync(vmlinux, { force: true });
    throw new DebianKernelError(`the XZ payload of ${vmlinuz} at offset ${start} did not decompress to an ELF file`);
  }
}

async function tool(command, args, cwd) {
  try {
    await run(command, args, { cwd, maxBuffer: MAX_TOOL_OUTPUT });
  } catch (error) {
    throw new DebianKernelError(`${command} ${args.join(' ')} failed: ${(error.stderr || error.message).trim()}`);
  }
}

module.exports = { debianKernel, DebianKernelError };

if (require.main === module) {
  debianKernel((text) => process.stderr.write(`${text}\n`)).then((kernel) => {
    if ('skip' in kernel) {
      process.stderr.write(`fetch-kernel: ${kernel.skip}\n`);
      process.exit(1);
    }
    process.stderr.write(`fetch-kernel: Debian ${kernel.version}; the bzImage is ${kernel.vmlinuz}\n`);
    process.stdout.write(`${kernel.vmlinux}\n`);
  }, (error) => {
    process.stderr.write(`fetch-kernel: ${error instanceof DebianKernelError ? error.message : error.stack}\n`);
    process.exit(1);
  });
}

// Firmware boots for tests: build the disk images (scripts/make-disk-images.sh),
// and boot one under QEMU with Debian's SeaBIOS and a virtio-blk disk, the way
// tsvmm's firmware boots are compared against it. Unlike runQemu in qemu.ts
// (which passes -kernel and cuts SeaBIOS's banner off), this keeps all of COM1
// and can collect SeaBIOS's debug log (port 0x402).

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './tsvmm';
import * as assert from 'uvu/assert';
import { SerialRun, runCollectingSerial } from './qemu';

/** Debian's SeaBIOS (package seabios): what QEMU -M pc runs, and what tsvmm loads. */
export const SEABIOS_BIN = '/usr/share/seabios/bios.bin';
export const MAKE_DISK_IMAGES = path.join(ROOT, 'scripts', 'make-disk-images.sh');

export type DiskImage = 'mbr' | 'grub';

export interface ImageBuild {
  /** OUTDIR/<name>.img when the build succeeded, else undefined. */
  image?: string;
  /** Why not: the script's stderr (one line per missing tool), or its exit status. */
  reason?: string;
  stderr: string;
}

/** Runs scripts/make-disk-images.sh OUTDIR NAME and returns the image or why there is none. */
export function makeDiskImage(outDir: string, name: DiskImage): ImageBuild {
  const run = spawnSync('bash', [MAKE_DISK_IMAGES, outDir, name], { cwd: ROOT, encoding: 'utf8', timeout: 10 * 60_000 });
  const stderr = `${run.stderr ?? ''}${run.error ? run.error.message : ''}`;
  const image = path.join(outDir, `${name}.img`);
  if (run.status === 0 && fs.existsSync(image)) return { image, stderr };
  const missing = stderr.split('\n').filter((line) => line.includes('missing'));
  const reason = missing.length > 0 ? missing.join('; ') : `make-disk-images.sh ${name} failed (status ${run.status}): ${stderr.trim()}`;
  return { reason, stderr };
}

export interface FirmwareBootOptions {
  cpus?: number;
  /** A file for SeaBIOS's debug log (isa-debugcon at port 0x402). */
  debugLog?: string;
}

/** The tsvmm arguments of the same boot as firmwareQemuArgs: 128 MiB, COM1 on stdout, the image as a virtio-blk disk. */
export function firmwareTsvmmArgs(image: string, options: FirmwareBootOptions & { splitIrqchip?: boolean } = {}): string[] {
  const args = ['--bios', SEABIOS_BIN, '--mem', '128', '--disk', `path=${image}`];
  if (options.cpus !== undefined) args.push('--cpus', String(options.cpus));
  if (options.splitIrqchip) args.push('--split-irqchip');
  if (options.debugLog) args.push('--debugcon', `file:${options.debugLog}`);
  return args;
}

/**
 * The QEMU arguments of a firmware boot: a PC with 128 MiB, COM1 on stdio, SeaBIOS,
 * the raw image as a modern-only virtio-blk PCI disk; QEMU exits when the guest resets.
 */
export function firmwareQemuArgs(image: string, options: FirmwareBootOptions = {}): string[] {
  const args = ['-accel', 'kvm', '-M', 'pc', '-m', '128', '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-bios', SEABIOS_BIN];
  if (options.cpus !== undefined) args.push('-smp', String(options.cpus));
  args.push('-drive', `file=${image},if=none,id=d0,format=raw`, '-device', 'virtio-blk-pci,drive=d0,disable-legacy=on');
  if (options.debugLog) args.push('-debugcon', `file:${options.debugLog}`, '-global', 'isa-debugcon.iobase=0x402');
  return args;
}

/** A firmware boot's COM1 (SeaBIOS's sercon output included) and how it ended. */
export type FirmwareRun = SerialRun;

/** Spawns `command args` (QEMU, or later tsvmm), collects stdout as COM1, kills it after timeoutMs. */
export const runFirmware = runCollectingSerial;

/** One entry of an E820 map. */
export interface E820Entry {
  base: bigint;
  length: bigint;
  type: number;
}

/** The map SeaBIOS's debug log prints ("e820 map has N items:" then "  i: START - END = TYPE NAME"). */
export function e820FromSeabiosLog(log: string): E820Entry[] | undefined {
  const header = /^e820 map has (\d+) items:$/m.exec(log);
  if (!header) return undefined;
  const rest = log.slice(header.index + header[0].length).split('\n').slice(1, 1 + Number(header[1]));
  return rest.map((line) => {
    const match = /^\s*\d+: ([0-9a-f]{16}) - ([0-9a-f]{16}) = (\d+)/.exec(line);
    if (!match) throw new Error(`unexpected e820 line in the SeaBIOS log: ${JSON.stringify(line)}`);
    const base = BigInt(`0x${match[1]}`);
    return { base, length: BigInt(`0x${match[2]}`) - base, type: Number(match[3]) };
  });
}

/** What every SeaBIOS boot of a disk must show, under QEMU and tsvmm alike: banner, boot message, the virtio-blk disk, `cpus` CPUs. */
export function checkSeabios(run: FirmwareRun, log: string, cpus: number, context: string): void {
  assert.ok(run.output.includes('SeaBIOS (version'), `SeaBIOS banner on COM1; ${context}`);
  assert.ok(run.output.includes('Booting from Hard Disk...'), `"Booting from Hard Disk..."; ${context}`);
  assert.ok(log.includes('found virtio-blk at'), `SeaBIOS log: virtio-blk found; log ${log}`);
  assert.ok(log.includes(`Found ${cpus} cpu(s) max supported ${cpus} cpu(s)`), `SeaBIOS log: ${cpus} CPUs; log ${log}`);
  assert.ok(log.includes('Booting from 0000:7c00'), `SeaBIOS log: jumped to the boot sector; log ${log}`);
}

const hex16 = (value: bigint): string => value.toString(16).padStart(16, '0');

/** The lines guests/mbr must print for the map SeaBIOS built (its debug log's). */
export function expectedMbrLines(map: E820Entry[]): string[] {
  const stage2Sectors = fs.statSync(path.join(ROOT, 'guests', 'out', 'mbr.bin')).size / 512 - 1;
  return [
    'mbr: running, boot drive 80',
    // SeaBIOS: EDD 3.0, API subsets 1 (extended access), 2 (removable), 4 (EDD)
    `mbr: int13 ext 30 api 0007, stage 2 loaded (${stage2Sectors} sectors)`,
    'mbr: disk 00000800 sectors of 0200 bytes', // mbr.img is 1 MiB
    'mbr: int13 ext read ok (16 sectors at lba 16)',
    `mbr: e820 ${map.length} entries`,
    ...map.map((e) => `mbr: e820 ${hex16(e.base)} ${hex16(e.length)} ${e.type}`),
    'mbr: reset',
  ];
}

/**
 * What a boot of grub.img must show after SeaBIOS's lines, under QEMU and tsvmm alike: GRUB's
 * "GRUB loading.", grub.cfg's three lines in order (GRUB's "Welcome to GRUB!", written late
 * through SeaBIOS's sercon, may share a line with the first), and the hard reboot SeaBIOS makes
 * after GRUB's `reboot` jumps to the reset vector.
 */
export function checkGrubBoot(run: FirmwareRun, log: string, context: string): void {
  checkSeabios(run, log, 1, context);
  assert.ok(run.output.includes('GRUB loading.'), `boot.img/diskboot.img's "GRUB loading."; ${context}`);
  const lines = run.lines.map((line) => line.trim());
  assert.ok(lines.some((line) => line.endsWith('grub: grub.cfg running')), `the grub.cfg marker; ${context}`);
  assert.ok(lines.includes('grub: hello from the FAT partition'), `cat /hello.txt; ${context}`);
  assert.ok(lines.includes('grub: rebooting'), `grub.cfg's last echo; ${context}`);
  const order = ['grub: grub.cfg running', 'grub: hello from the FAT partition', 'grub: rebooting'].map((s) => run.output.indexOf(s));
  assert.ok(order[0] < order[1] && order[1] < order[2], `grub.cfg's lines in order; ${context}`);
  assert.ok(log.includes('Attempting a hard reboot'), `SeaBIOS log: hard reboot after GRUB's reboot; log ${log}`);
}

// The on-disk form of a snapshot: a directory with manifest.json (format
// version, tsvmm version, the VmConfig, the KVM state of the VM and of every
// vCPU as base64 blobs, every device's state, where each RAM slot sits in
// the memory file, and SHA-256 checksums) and memory.bin, guest RAM as a
// sparse file: all-zero pages are never written, so they stay holes, and a
// restore maps the file copy-on-write. Both files are written under a
// temporary name and renamed, manifest last: a snapshot is either whole or
// refused, and a VM restored from a directory can snapshot into it again (its
// mapping keeps the old file alive).

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TsvmmError } from '../../shared/errors';
import type { MsrEntry } from '../../shared/kvm-structs';
import type { VcpuState, VmState } from '../kvm/kvm';
import { VmConfig, resolveVmConfig } from './vm-config';

export const SNAPSHOT_FORMAT_VERSION = 1;
const FORMAT_NAME = 'tsvmm-snapshot';
export const MANIFEST_FILE = 'manifest.json';
export const MEMORY_FILE = 'memory.bin';
const PAGE_BYTES = 4096;
/** Pages checked for zeros at once before looking page by page: an idle guest's RAM is mostly zero. */
const ZERO_CHUNK_PAGES = 64;
const ZERO_CHUNK = Buffer.alloc(PAGE_BYTES * ZERO_CHUNK_PAGES);
/** The most held host input a manifest may carry (the queue holds about 64 KiB; a caller that ignores its backpressure, more). */
const HOST_INPUT_MAX_BYTES = 16 * 1024 * 1024;
/** Reads of the memory file for its checksum go in pieces of at most this. */
const READ_CHUNK_BYTES = 16 * 1024 * 1024;

/** A snapshot that cannot be used; the CLI prints it as one line and exits 2. */
export class SnapshotError extends TsvmmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('usage', message, options);
  }
}

/** Guest RAM as the snapshot writer reads it: each slot's guest address and its bytes. */
export interface RamImage {
  guestAddress: number;
  bytes: Uint8Array;
  /** One byte per page, 0 for a page known to be zero (not read at all); absent: every page is read. */
  mayHoldData?: Uint8Array;
}

/** Where each RAM slot is in memory.bin (page-aligned, so it can be mapped from there). */
export interface MemorySlot {
  guestAddress: number;
  size: number;
  fileOffset: number;
}

/** What a snapshot holds, decoded. */
export interface SnapshotState {
  config: VmConfig;
  vm: VmState;
  vcpus: VcpuState[];
  /** Board.snapshot(): every device's state by id. */
  devices: Record<string, unknown>;
  /** Host input for COM1 not yet in the UART (the machine's SerialInputQueue), when there was any. */
  com1Input?: Uint8Array;
}

/** A snapshot read back and checked. */
export interface LoadedSnapshot extends SnapshotState {
  tsvmmVersion: string;
  memoryFile: string;
  memorySlots: MemorySlot[];
  /** [first page, count] runs of memory.bin's pages that hold data (the rest are holes, zero). */
  memoryDataPages: [number, number][];
}

/** What writeSnapshot did, for benchmarks and logs. */
export interface SnapshotWriteStats {
  memoryBytes: number;
  /** Bytes of memory.bin that hold data (the rest are holes). */
  dataBytes: number;
}

// ---------------------------------------------------------------------------
// Encoding: Uint8Array as base64, bigint as a decimal or hex string.

const b64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');

interface EncodedVcpu {
  mpState: number;
  regs: string;
  sregs: string;
  xsave?: string;
  xcrs?: string;
  fpu?: string;
  debugregs: string;
  lapic: string;
  tscKhz: number;
  /** [index, value as hex] */
  msrs: [number, string][];
  events: string;
  parkedExternalInterrupt?: number;
}

interface EncodedVm {
  irqchip?: { picMaster: string; picSlave: string; ioapic: string };
  pit?: string;
  clock: { clock: string; flags: number };
}

function encodeVcpu(state: VcpuState): EncodedVcpu {
  return {
    mpState: state.mpState,
    regs: b64(state.regs),
    sregs: b64(state.sregs),
    ...(state.xsave ? { xsave: b64(state.xsave) } : {}),
    ...(state.xcrs ? { xcrs: b64(state.xcrs) } : {}),
    ...(state.fpu ? { fpu: b64(state.fpu) } : {}),
    debugregs: b64(state.debugregs),
    lapic: b64(state.lapic),
    tscKhz: state.tscKhz,
    msrs: state.msrs.map((msr) => [msr.index, msr.data.toString(16)]),
    events: b64(state.events),
    ...(state.parkedExternalInterrupt === undefined ? {} : { parkedExternalInterrupt: state.parkedExternalInterrupt }),
  };
}

function encodeVm(state: VmState): EncodedVm {
  return {
    ...(state.irqchip ? { irqchip: { picMaster: b64(state.irqchip.picMaster), picSlave: b64(state.irqchip.picSlave), ioapic: b64(state.irqchip.ioapic) } } : {}),
    ...(state.pit ? { pit: b64(state.pit) } : {}),
    clock: { clock: state.clock.clock.toString(), flags: state.clock.flags },
  };
}

/** Decoding checks every field and throws SnapshotError naming the first bad one. */
class Decoder {
  constructor(private readonly where: string) {}

  fail(field: string, want: string): never {
    throw new SnapshotError(`${this.where}: ${field} is not ${want}; the manifest is damaged, take the snapshot again`);
  }

  object(value: unknown, field: string): Record<string, unknown> {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(field, 'an object');
    return value as Record<string, unknown>;
  }

  integer(value: unknown, field: string, max = 0xffff_ffff): number {
    if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > max) this.fail(field, `an integer 0..${max}`);
    return value as number;
  }

  /** A base64 blob of `length` bytes exactly, or of at least `length.atLeast`. */
  blob(value: unknown, field: string, length: number | { atLeast: number }): Uint8Array {
    if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) this.fail(field, 'a base64 string');
    const bytes = new Uint8Array(Buffer.from(value as string, 'base64'));
    const fits = typeof length === 'number' ? bytes.length === length : bytes.length >= length.atLeast;
    if (!fits) this.fail(field, `${typeof length === 'number' ? length : `at least ${length.atLeast}`} bytes of base64 (it has ${bytes.length})`);
    return bytes;
  }

  /** `{ [key]: blob }` when the field is there, `{}` when it is not (so a decoded state has no undefined fields). */
  optionalBlob<K extends string>(key: K, value: unknown, field: string, length: number | { atLeast: number }): Partial<Record<K, Uint8Array>> {
    return value === undefined ? {} : { [key]: this.blob(value, field, length) } as Record<K, Uint8Array>;
  }

  bigint(value: unknown, field: string, radix: 10 | 16): bigint {
    const pattern = radix === 10 ? /^[0-9]{1,20}$/ : /^[0-9a-f]{1,16}$/;
    if (typeof value !== 'string' || !pattern.test(value)) this.fail(field, radix === 10 ? 'a decimal string' : 'a hex string');
    return BigInt(radix === 10 ? value as string : `0x${value as string}`);
  }
}

/** Sizes of the KVM structs in a snapshot (kvm-abi.ts SIZEOF; struct kvm_xsave may be larger with KVM_CAP_XSAVE2). */
const BLOB_BYTES = {
  regs: 144, sregs: 312, xsave: { atLeast: 4096 }, xcrs: 392, fpu: 416, debugregs: 128, lapic: 1024, events: 64,
  irqchip: 520, pit: 112,
} as const;

function decodeVcpu(raw: unknown, d: Decoder, at: string): VcpuState {
  const o = d.object(raw, at);
  if (!Array.isArray(o.msrs)) d.fail(`${at}.msrs`, 'a list');
  const msrs: MsrEntry[] = (o.msrs as unknown[]).map((entry, i) => {
    if (!Array.isArray(entry) || entry.length !== 2) d.fail(`${at}.msrs[${i}]`, 'an [index, hex value] pair');
    const pair = entry as unknown[];
    return { index: d.integer(pair[0], `${at}.msrs[${i}][0]`), data: d.bigint(pair[1], `${at}.msrs[${i}][1]`, 16) };
  });
  const state: VcpuState = {
    mpState: d.integer(o.mpState, `${at}.mpState`),
    regs: d.blob(o.regs, `${at}.regs`, BLOB_BYTES.regs),
    sregs: d.blob(o.sregs, `${at}.sregs`, BLOB_BYTES.sregs),
    ...d.optionalBlob('xsave', o.xsave, `${at}.xsave`, BLOB_BYTES.xsave),
    ...d.optionalBlob('xcrs', o.xcrs, `${at}.xcrs`, BLOB_BYTES.xcrs),
    ...d.optionalBlob('fpu', o.fpu, `${at}.fpu`, BLOB_BYTES.fpu),
    debugregs: d.blob(o.debugregs, `${at}.debugregs`, BLOB_BYTES.debugregs),
    lapic: d.blob(o.lapic, `${at}.lapic`, BLOB_BYTES.lapic),
    tscKhz: d.integer(o.tscKhz, `${at}.tscKhz`),
    msrs,
    events: d.blob(o.events, `${at}.events`, BLOB_BYTES.events),
    ...(o.parkedExternalInterrupt === undefined ? {} : { parkedExternalInterrupt: d.integer(o.parkedExternalInterrupt, `${at}.parkedExternalInterrupt`, 0xff) }),
  };
  if (!state.fpu && !(state.xsave && state.xcrs)) d.fail(at, 'a vCPU with either fpu or both xsave and xcrs');
  return state;
}

function decodeVm(raw: unknown, d: Decoder): VmState {
  const o = d.object(raw, 'vm');
  const clock = d.object(o.clock, 'vm.clock');
  const state: VmState = {
    ...d.optionalBlob('pit', o.pit, 'vm.pit', BLOB_BYTES.pit),
    clock: { clock: d.bigint(clock.clock, 'vm.clock.clock', 10), flags: d.integer(clock.flags, 'vm.clock.flags') },
  };
  if (o.irqchip !== undefined) {
    const chips = d.object(o.irqchip, 'vm.irqchip');
    state.irqchip = {
      picMaster: d.blob(chips.picMaster, 'vm.irqchip.picMaster', BLOB_BYTES.irqchip),
      picSlave: d.blob(chips.picSlave, 'vm.irqchip.picSlave', BLOB_BYTES.irqchip),
      ioapic: d.blob(chips.ioapic, 'vm.irqchip.ioapic', BLOB_BYTES.irqchip),
    };
  }
  return state;
}

// ---------------------------------------------------------------------------
// Memory: runs of non-zero pages.

/** [first page, page count] runs of pages with data, by page number in memory.bin. */
type PageRuns = [number, number][];

function isZero(bytes: Uint8Array, from: number, length: number): boolean {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset + from, length);
  return view.equals(length === ZERO_CHUNK.length ? ZERO_CHUNK : ZERO_CHUNK.subarray(0, length));
}

/** The runs of non-zero pages of `bytes` (a whole number of pages), numbered from `firstPage`; only pages `mayHoldData` marks are read. */
function dataRuns(bytes: Uint8Array, firstPage: number, mayHoldData?: Uint8Array): PageRuns {
  const runs: PageRuns = [];
  const pages = bytes.length / PAGE_BYTES;
  let page = 0;
  const extend = (at: number) => {
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === firstPage + at) last[1]++;
    else runs.push([firstPage + at, 1]);
  };
  while (page < pages) {
    if (mayHoldData && mayHoldData[page] === 0) {
      page++;
      continue;
    }
    const chunk = Math.min(ZERO_CHUNK_PAGES, pages - page);
    if (!mayHoldData && isZero(bytes, page * PAGE_BYTES, chunk * PAGE_BYTES)) {
      page += chunk;
      continue;
    }
    for (const end = page + chunk; page < end; page++) {
      if ((!mayHoldData || mayHoldData[page] !== 0) && !isZero(bytes, page * PAGE_BYTES, PAGE_BYTES)) extend(page);
    }
  }
  return runs;
}

function checksum(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

// ---------------------------------------------------------------------------
// Writing.

/**
 * Writes `state` and guest RAM (`ram`, one image per KVM slot) to
 * `directory` (created if missing), replacing a snapshot already there.
 */
export function writeSnapshot(directory: string, state: SnapshotState, ram: readonly RamImage[], tsvmmVersion: string): SnapshotWriteStats {
  try {
    return writeSnapshotFiles(directory, state, ram, tsvmmVersion);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined) throw error;
    const where = (error as NodeJS.ErrnoException).path ?? directory;
    // A directory the caller named badly is theirs to fix; a full or failing disk is the host's.
    const kind = ['EACCES', 'EPERM', 'ENOENT', 'ENOTDIR', 'EROFS', 'EEXIST', 'EISDIR'].includes(code) ? 'usage' : 'host';
    throw new TsvmmError(kind, `cannot write the snapshot to ${directory}: ${where}: ${code}; give a writable directory with room for the guest's memory`, { cause: error });
  }
}

function writeSnapshotFiles(directory: string, state: SnapshotState, ram: readonly RamImage[], tsvmmVersion: string): SnapshotWriteStats {
  fs.mkdirSync(directory, { recursive: true });
  const memoryPath = path.join(directory, MEMORY_FILE);
  const manifestPath = path.join(directory, MANIFEST_FILE);
  const memoryTemp = `${memoryPath}.tmp-${process.pid}`;
  const manifestTemp = `${manifestPath}.tmp-${process.pid}`;
  const slots: MemorySlot[] = [];
  const runs: PageRuns = [];
  const memoryHash = createHash('sha256');
  let fileBytes = 0;
  let dataBytes = 0;
  const fd = fs.openSync(memoryTemp, 'w', 0o600);
  try {
    for (const image of ram) {
      if (image.bytes.length % PAGE_BYTES !== 0) throw new TsvmmError('internal', `RAM slot at 0x${image.guestAddress.toString(16)} is not a whole number of pages`);
      slots.push({ guestAddress: image.guestAddress, size: image.bytes.length, fileOffset: fileBytes });
      for (const [first, count] of dataRuns(image.bytes, fileBytes / PAGE_BYTES, image.mayHoldData)) {
        const from = first * PAGE_BYTES - fileBytes;
        const length = count * PAGE_BYTES;
        const data = image.bytes.subarray(from, from + length);
        let written = 0;
        while (written < length) written += fs.writeSync(fd, data, written, length - written, first * PAGE_BYTES + written);
        memoryHash.update(data);
        runs.push([first, count]);
        dataBytes += length;
      }
      fileBytes += image.bytes.length;
    }
    // The holes after the last data page: the file has its full length, so a truncated copy is told apart.
    fs.ftruncateSync(fd, fileBytes);
    fs.fdatasyncSync(fd);
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(memoryTemp, { force: true });
    throw error;
  }
  fs.closeSync(fd);
  const body = {
    format: FORMAT_NAME,
    formatVersion: SNAPSHOT_FORMAT_VERSION,
    tsvmmVersion,
    config: state.config,
    vm: encodeVm(state.vm),
    vcpus: state.vcpus.map(encodeVcpu),
    devices: state.devices,
    ...(state.com1Input && state.com1Input.length > 0 ? { com1Input: b64(state.com1Input) } : {}),
    memory: { file: MEMORY_FILE, fileBytes, slots, dataPages: runs, sha256: memoryHash.digest('hex') },
  };
  const text = JSON.stringify(body);
  fs.writeFileSync(manifestTemp, JSON.stringify({ ...body, sha256: checksum(text) }), { mode: 0o600 });
  fs.renameSync(memoryTemp, memoryPath);
  fs.renameSync(manifestTemp, manifestPath);
  return { memoryBytes: fileBytes, dataBytes };
}

// ---------------------------------------------------------------------------
// Reading.

function readManifest(directory: string): Record<string, unknown> {
  const file = path.join(directory, MANIFEST_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'it does not exist' : `cannot read it (${code ?? 'error'})`;
    throw new SnapshotError(`--restore ${directory}: ${MANIFEST_FILE}: ${why}; give a directory a snapshot was written to`, { cause: error });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new SnapshotError(`--restore ${directory}: ${MANIFEST_FILE} is not a snapshot manifest (${(error as Error).message}); take the snapshot again`, { cause: error });
  }
}

/** Hashes the data pages of the memory file, reading only those (the holes are known to be zero). */
function hashMemory(fd: number, runs: PageRuns): string {
  const hash = createHash('sha256');
  const longest = runs.reduce((most, [, count]) => Math.max(most, count * PAGE_BYTES), PAGE_BYTES);
  const buffer = Buffer.alloc(Math.min(READ_CHUNK_BYTES, longest));
  for (const [first, count] of runs) {
    let position = first * PAGE_BYTES;
    let left = count * PAGE_BYTES;
    while (left > 0) {
      const want = Math.min(left, buffer.length);
      const got = fs.readSync(fd, buffer, 0, want, position);
      if (got === 0) return 'short';
      hash.update(buffer.subarray(0, got));
      position += got;
      left -= got;
    }
  }
  return hash.digest('hex');
}

/**
 * Reads and checks the snapshot in `directory`: format and version, the
 * manifest's checksum, every field, the memory file's length and the
 * checksum of its data pages. Anything wrong is one SnapshotError line.
 */
export function readSnapshot(directory: string): LoadedSnapshot {
  const manifest = readManifest(directory);
  const where = `--restore ${directory}`;
  if (manifest.format !== FORMAT_NAME) throw new SnapshotError(`${where}: ${MANIFEST_FILE} is not a tsvmm snapshot manifest; give a directory a snapshot was written to`);
  if (manifest.formatVersion !== SNAPSHOT_FORMAT_VERSION) {
    throw new SnapshotError(`${where}: the snapshot is in format version ${JSON.stringify(manifest.formatVersion)} (tsvmm ${String(manifest.tsvmmVersion)}); this tsvmm reads version ${SNAPSHOT_FORMAT_VERSION} only, restore it with the tsvmm that took it`);
  }
  const { sha256, ...body } = manifest;
  if (sha256 !== checksum(JSON.stringify(body))) throw new SnapshotError(`${where}: the checksum of ${MANIFEST_FILE} does not match its contents; the snapshot is damaged, take it again`);
  const d = new Decoder(`${where}: ${MANIFEST_FILE}`);
  const memory = d.object(manifest.memory, 'memory');
  if (memory.file !== MEMORY_FILE) d.fail('memory.file', `"${MEMORY_FILE}"`);
  const fileBytes = d.integer(memory.fileBytes, 'memory.fileBytes', Number.MAX_SAFE_INTEGER);
  if (!Array.isArray(memory.slots) || memory.slots.length === 0) d.fail('memory.slots', 'a list of RAM slots');
  const memorySlots = (memory.slots as unknown[]).map((raw, i): MemorySlot => {
    const slot = d.object(raw, `memory.slots[${i}]`);
    const decoded = {
      guestAddress: d.integer(slot.guestAddress, `memory.slots[${i}].guestAddress`, Number.MAX_SAFE_INTEGER),
      size: d.integer(slot.size, `memory.slots[${i}].size`, Number.MAX_SAFE_INTEGER),
      fileOffset: d.integer(slot.fileOffset, `memory.slots[${i}].fileOffset`, Number.MAX_SAFE_INTEGER),
    };
    if (decoded.fileOffset % PAGE_BYTES !== 0 || decoded.size % PAGE_BYTES !== 0 || decoded.fileOffset + decoded.size > fileBytes) {
      d.fail(`memory.slots[${i}]`, 'a page-aligned slot inside the memory file');
    }
    return decoded;
  });
  if (!Array.isArray(memory.dataPages)) d.fail('memory.dataPages', 'a list of page runs');
  const runs = (memory.dataPages as unknown[]).map((run, i): [number, number] => {
    if (!Array.isArray(run) || run.length !== 2) d.fail(`memory.dataPages[${i}]`, 'a [first page, count] pair');
    const pair = run as unknown[];
    const first = d.integer(pair[0], `memory.dataPages[${i}][0]`, Number.MAX_SAFE_INTEGER);
    const count = d.integer(pair[1], `memory.dataPages[${i}][1]`, Number.MAX_SAFE_INTEGER);
    if ((first + count) * PAGE_BYTES > fileBytes) d.fail(`memory.dataPages[${i}]`, 'a run inside the memory file');
    return [first, count];
  });
  const config = resolveVmConfig(manifest.config, `${where}: ${MANIFEST_FILE} config`);
  if (!Array.isArray(manifest.vcpus) || manifest.vcpus.length !== config.cpus) d.fail('vcpus', `a list of ${config.cpus} vCPU states (the config's cpus)`);
  const vcpus = (manifest.vcpus as unknown[]).map((raw, i) => decodeVcpu(raw, d, `vcpus[${i}]`));
  // Only the boot vCPU of a split-irqchip VM takes KVM_INTERRUPT (the userspace PIC's vectors).
  vcpus.forEach((vcpu, i) => {
    if (vcpu.parkedExternalInterrupt !== undefined && (i !== 0 || config.irqchip !== 'split')) {
      d.fail(`vcpus[${i}].parkedExternalInterrupt`, 'absent (only the boot vCPU of a split-irqchip VM has one)');
    }
  });
  const vm = decodeVm(manifest.vm, d);
  const devices = d.object(manifest.devices, 'devices');
  const com1Input = manifest.com1Input === undefined ? undefined : d.blob(manifest.com1Input, 'com1Input', { atLeast: 0 });
  if (com1Input && com1Input.length > HOST_INPUT_MAX_BYTES) d.fail('com1Input', `at most ${HOST_INPUT_MAX_BYTES} bytes of base64 (it has ${com1Input.length})`);

  const memoryFile = path.join(directory, MEMORY_FILE);
  let fd: number;
  try {
    fd = fs.openSync(memoryFile, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new SnapshotError(`${where}: ${MEMORY_FILE}: ${code === 'ENOENT' ? 'it does not exist' : `cannot open it (${code ?? 'error'})`}; the snapshot is incomplete, take it again`, { cause: error });
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size !== fileBytes) throw new SnapshotError(`${where}: ${MEMORY_FILE} has ${size} bytes, the manifest says ${fileBytes}; the file is truncated or from another snapshot, take it again`);
    if (hashMemory(fd, runs) !== memory.sha256) throw new SnapshotError(`${where}: the checksum of ${MEMORY_FILE} does not match the manifest; the snapshot is damaged, take it again`);
  } finally {
    fs.closeSync(fd);
  }
  return {
    tsvmmVersion: String(manifest.tsvmmVersion),
    config, vm, vcpus, devices,
    ...(com1Input ? { com1Input } : {}),
    memoryFile,
    memorySlots,
    memoryDataPages: runs,
  };
}

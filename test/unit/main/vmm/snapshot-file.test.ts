// The snapshot directory format (snapshot-file.ts) without KVM: synthetic
// state and RAM images are written, read back and compared; all-zero pages
// must stay holes; each kind of damage is refused with one SnapshotError line.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  MANIFEST_FILE, MEMORY_FILE, SNAPSHOT_FORMAT_VERSION, SnapshotError, SnapshotState, readSnapshot, writeSnapshot,
} from '../../../../src/main/vmm/snapshot-file';
import { resolveVmConfig } from '../../../../src/main/vmm/vm-config';
import type { VcpuState } from '../../../../src/main/kvm/kvm';

const PAGE = 4096;
const MIB = 1024 * 1024;

function filled(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 7 + seed) & 0xff);
}

function vcpu(seed: number): VcpuState {
  return {
    mpState: 0,
    regs: filled(144, seed),
    sregs: filled(312, seed + 1),
    xsave: filled(4096, seed + 2),
    xcrs: filled(392, seed + 3),
    debugregs: filled(128, seed + 4),
    lapic: filled(1024, seed + 5),
    tscKhz: 2_100_000,
    msrs: [{ index: 0x10, data: 0xffff_ffff_ffff_fff0n }, { index: 0xc000_0080, data: 0xd01n }],
    events: filled(64, seed + 6),
  };
}

function state(): SnapshotState {
  return {
    config: resolveVmConfig({ cpus: 2, memoryMiB: 4, irqchip: 'split' }),
    vm: {
      irqchip: { picMaster: filled(520, 1), picSlave: filled(520, 2), ioapic: filled(520, 3) },
      pit: filled(112, 4),
      clock: { clock: 123_456_789_012n, flags: 2 },
    },
    // The boot vCPU with an ExtINT vector KVM held parked (split irqchip); the other without.
    vcpus: [{ ...vcpu(10), parkedExternalInterrupt: 0x20 }, vcpu(20)],
    devices: { com1: { ier: 1, fifo: [1, 2] }, cmos: { index: 3 } },
    com1Input: filled(100, 7),
  };
}

/** Two slots as below and above the 32-bit gap: data on a few pages, zeros elsewhere. */
function ram(): { guestAddress: number; bytes: Uint8Array }[] {
  const low = new Uint8Array(2 * MIB);
  low.set(filled(PAGE, 9), 0);
  low.set(filled(3 * PAGE, 5), 100 * PAGE);
  low[2 * MIB - 1] = 0xaa;
  const high = new Uint8Array(MIB);
  high[5 * PAGE + 17] = 1;
  return [{ guestAddress: 0, bytes: low }, { guestAddress: 0x1_0000_0000, bytes: high }];
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-snapshot-'));
}

function refused(directory: string, pattern: RegExp): void {
  try {
    readSnapshot(directory);
  } catch (error) {
    assert.instance(error, SnapshotError);
    assert.is((error as SnapshotError).kind, 'usage');
    assert.not.match((error as Error).message, /\n/);
    assert.match((error as Error).message, pattern);
    return;
  }
  assert.unreachable(`the snapshot in ${directory} was accepted`);
}

function rewriteManifest(directory: string, change: (manifest: Record<string, unknown>) => void): void {
  const file = path.join(directory, MANIFEST_FILE);
  const manifest = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  change(manifest);
  fs.writeFileSync(file, JSON.stringify(manifest));
}

test('a snapshot reads back as written: config, KVM state, devices, and each slot at its own page-aligned file offset', () => {
  const dir = tempDir();
  try {
    const images = ram();
    const stats = writeSnapshot(dir, state(), images, '9.9.9');
    assert.equal(stats, { memoryBytes: 3 * MIB, dataBytes: 6 * PAGE });
    const loaded = readSnapshot(dir);
    assert.is(loaded.tsvmmVersion, '9.9.9');
    assert.equal(loaded.config, state().config);
    assert.equal(loaded.vm, state().vm);
    assert.equal(loaded.vcpus, state().vcpus);
    assert.equal(loaded.devices, state().devices);
    assert.equal(loaded.com1Input, state().com1Input, 'the host input COM1 had not taken');
    assert.equal(loaded.memorySlots, [
      { guestAddress: 0, size: 2 * MIB, fileOffset: 0 },
      { guestAddress: 0x1_0000_0000, size: MIB, fileOffset: 2 * MIB },
    ]);
    const file = fs.readFileSync(loaded.memoryFile);
    assert.is(file.length, 3 * MIB);
    assert.ok(Buffer.from(images[0].bytes).equals(file.subarray(0, 2 * MIB)));
    assert.ok(Buffer.from(images[1].bytes).equals(file.subarray(2 * MIB)));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('all-zero pages are left as holes: the memory file allocates only the pages with data', () => {
  const dir = tempDir();
  try {
    writeSnapshot(dir, state(), ram(), '0.1.0');
    const stat = fs.statSync(path.join(dir, MEMORY_FILE));
    // st_blocks counts 512-byte units; a file system may round up a little, never to the whole 3 MiB.
    assert.ok(stat.blocks * 512 <= 16 * PAGE, `${stat.blocks * 512} bytes allocated for 6 pages of data`);
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, MANIFEST_FILE), 'utf8')) as { memory: { dataPages: number[][] } };
    assert.equal(manifest.memory.dataPages, [[0, 1], [100, 3], [511, 1], [517, 1]]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a second snapshot into the same directory replaces the first and leaves no temporary file', () => {
  const dir = tempDir();
  try {
    writeSnapshot(dir, state(), ram(), '0.1.0');
    const other = state();
    other.devices = { com1: { ier: 0 } };
    writeSnapshot(dir, other, [{ guestAddress: 0, bytes: new Uint8Array(MIB) }], '0.1.0');
    assert.equal(readSnapshot(dir).devices, { com1: { ier: 0 } });
    assert.equal(fs.readdirSync(dir).sort(), [MANIFEST_FILE, MEMORY_FILE]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('refused with one line: another format version, a changed manifest, a truncated or changed memory file, a missing file', () => {
  const dir = tempDir();
  try {
    writeSnapshot(dir, state(), ram(), '0.1.0');
    const manifest = fs.readFileSync(path.join(dir, MANIFEST_FILE));
    const memory = fs.readFileSync(path.join(dir, MEMORY_FILE));
    const reset = () => {
      fs.writeFileSync(path.join(dir, MANIFEST_FILE), manifest);
      fs.writeFileSync(path.join(dir, MEMORY_FILE), memory);
    };

    rewriteManifest(dir, (m) => { m.formatVersion = SNAPSHOT_FORMAT_VERSION + 1; });
    refused(dir, new RegExp(`format version ${SNAPSHOT_FORMAT_VERSION + 1}.*reads version ${SNAPSHOT_FORMAT_VERSION}`));
    reset();
    rewriteManifest(dir, (m) => { (m.config as { cpus: number }).cpus = 1; });
    refused(dir, /checksum of manifest\.json does not match/);
    reset();
    fs.truncateSync(path.join(dir, MEMORY_FILE), 2 * MIB);
    refused(dir, /memory\.bin has 2097152 bytes, the manifest says 3145728; the file is truncated/);
    reset();
    const changed = Buffer.from(memory);
    changed[100 * PAGE + 5] ^= 1;
    fs.writeFileSync(path.join(dir, MEMORY_FILE), changed);
    refused(dir, /checksum of memory\.bin does not match/);
    reset();
    fs.rmSync(path.join(dir, MEMORY_FILE));
    refused(dir, /memory\.bin: it does not exist/);
    reset();
    fs.writeFileSync(path.join(dir, MANIFEST_FILE), '{"format":');
    refused(dir, /manifest\.json is not a snapshot manifest/);
    fs.rmSync(path.join(dir, MANIFEST_FILE));
    refused(dir, /manifest\.json: it does not exist/);
    refused(path.join(dir, 'nowhere'), /manifest\.json: it does not exist/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a manifest with a consistent checksum but a bad field is refused naming the field', () => {
  const dir = tempDir();
  try {
    const bad = state();
    bad.vcpus[1] = { ...bad.vcpus[1], lapic: new Uint8Array(10) };
    writeSnapshot(dir, bad, ram(), '0.1.0');
    refused(dir, /vcpus\[1\]\.lapic is not 1024 bytes of base64 \(it has 10\)/);
    const badVector = state();
    badVector.vcpus[0] = { ...badVector.vcpus[0], parkedExternalInterrupt: 256 };
    writeSnapshot(dir, badVector, ram(), '0.1.0');
    refused(dir, /vcpus\[0\]\.parkedExternalInterrupt .*0\.\.255/);
    const wrongVcpu = state();
    wrongVcpu.vcpus[1] = { ...wrongVcpu.vcpus[1], parkedExternalInterrupt: 0x20 };
    writeSnapshot(dir, wrongVcpu, ram(), '0.1.0');
    refused(dir, /vcpus\[1\]\.parkedExternalInterrupt is not absent \(only the boot vCPU of a split-irqchip VM has one\)/);
    const kernelIrqchip = { ...state(), config: resolveVmConfig({ cpus: 2, memoryMiB: 4, irqchip: 'kernel' }) };
    writeSnapshot(dir, kernelIrqchip, ram(), '0.1.0');
    refused(dir, /vcpus\[0\]\.parkedExternalInterrupt is not absent/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a directory that cannot be written is one usage line naming it', () => {
  const dir = tempDir();
  try {
    const file = path.join(dir, 'a-file');
    fs.writeFileSync(file, '');
    try {
      writeSnapshot(path.join(file, 'snap'), state(), ram(), '0.1.0');
      assert.unreachable('a snapshot under a regular file was written');
    } catch (error) {
      assert.is((error as { kind?: string }).kind, 'usage');
      assert.match((error as Error).message, /^cannot write the snapshot to .*a-file\/snap: .*: (ENOTDIR|EEXIST); give a writable directory/);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();

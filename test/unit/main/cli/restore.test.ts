// --restore DIR (cli/restore.ts): options that shape the VM are refused before
// the snapshot is read; the snapshot's config takes this process's --serial
// and, when given, --hand-off and --spin-limit.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCli } from '../../../../src/main/cli/args';
import { snapshotToRestore } from '../../../../src/main/cli/restore';
import { writeSnapshot } from '../../../../src/main/vmm/snapshot-file';
import { resolveVmConfig } from '../../../../src/main/vmm/vm-config';

function snapshotDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-restore-cli-'));
  const vcpu = {
    mpState: 0, regs: new Uint8Array(144), sregs: new Uint8Array(312), fpu: new Uint8Array(416), debugregs: new Uint8Array(128),
    lapic: new Uint8Array(1024), tscKhz: 1000, msrs: [], events: new Uint8Array(64),
  };
  const config = resolveVmConfig({ memoryMiB: 1, handOff: 'park', serial: { kind: 'file', path: '/tmp/old-serial' } });
  writeSnapshot(dir, { config, vm: { clock: { clock: 0n, flags: 0 } }, vcpus: [vcpu], devices: {} }, [{ guestAddress: 0, bytes: new Uint8Array(1024 * 1024) }], '0.1.0');
  return dir;
}

const restoring = (argv: string[]) => {
  const options = parseCli(argv);
  return snapshotToRestore({ ...options, restore: options.restore! });
};

test('an option that shapes the VM is refused, naming it, before the snapshot is read', () => {
  for (const option of [['--kernel', 'k'], ['--cpus', '2'], ['--mem', '64'], ['--split-irqchip'], ['--disk', 'path=/x'], ['--config', 'c.json']]) {
    assert.throws(() => restoring(['--restore', '/nowhere', ...option]), (error: Error) => (
      (error as { kind?: string }).kind === 'usage' && error.message.startsWith(`--restore and ${option[0]} cannot be combined`)
    ), option.join(' '));
  }
});

test('the snapshot\'s config, with COM1 where this process says and the hand-off given here', () => {
  const dir = snapshotDir();
  try {
    const kept = restoring(['--restore', dir]);
    assert.equal(kept.config.serial, { kind: 'stdio' }, 'COM1 goes to this process\'s terminal by default');
    assert.is(kept.config.handOff, 'park', 'the saved hand-off stays unless one is given');
    assert.is(kept.config.memoryMiB, 1);
    const changed = restoring(['--restore', dir, '--serial', 'null', '--hand-off', 'spin-park', '--spin-limit', '7']);
    assert.equal(changed.config.serial, { kind: 'null' });
    assert.is(changed.config.handOff, 'spin-park');
    assert.is(changed.config.spinLimit, 7);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a directory without a snapshot is the snapshot reader\'s one line', () => {
  assert.throws(() => restoring(['--restore', '/nowhere/at/all']), /--restore \/nowhere\/at\/all: manifest\.json: it does not exist/);
});

test.run();

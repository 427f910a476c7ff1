// VmConfig: plain data checked field by field, defaults filled, unknown
// fields refused, every problem one line naming the field.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveVmConfig } from '../../../../src/main/vmm/vm-config';
import { TsvmmError } from '../../../../src/shared/errors';

test('an empty object is the CLI\'s defaults', () => {
  assert.equal(resolveVmConfig({}), {
    cpus: 1, memoryMiB: 256, bootProtocol: 'auto', irqchip: 'kernel', serial: { kind: 'stdio' },
    handOff: 'spin-park', spinLimit: 4000, devices: [],
  });
});

test('every field is read, devices get their defaults', () => {
  const config = resolveVmConfig({
    cpus: 4, memoryMiB: 1024, kernel: 'k', initrd: 'i', cmdline: '', cmdlineBase: 'console=ttyS0 reboot=t', bootProtocol: 'pvh', irqchip: 'split',
    serial: { kind: 'file', path: '/tmp/out' }, rtcBase: '2026-11-26T08:15:00Z', handOff: 'park', spinLimit: 10,
    devices: [{ kind: 'rng' }, { kind: 'disk', path: 'a.img' }, { kind: 'disk', path: 'b.img', readonly: true, serial: 'b' }, { kind: 'console' }],
  });
  assert.equal(config.devices, [
    { kind: 'rng', source: '/dev/urandom' },
    { kind: 'disk', path: 'a.img', readonly: false },
    { kind: 'disk', path: 'b.img', readonly: true, serial: 'b' },
    { kind: 'console' },
  ]);
  assert.is(config.irqchip, 'split');
  assert.is(config.cmdlineBase, 'console=ttyS0 reboot=t');
  assert.equal(config.serial, { kind: 'file', path: '/tmp/out' });
});

const refusals: Array<[unknown, RegExp]> = [
  [[], /^vm\.json: must be a JSON object such as \{"cpus": 2\}, got a list$/],
  [{ cpu: 2 }, /^vm\.json: unknown field "cpu"; the fields are cpus, memoryMiB,/],
  [{ cpus: 'two' }, /^vm\.json: "cpus" must be a whole number from 1 to 65536, got "two"$/],
  [{ cpus: 1.5 }, /"cpus" must be a whole number/],
  [{ memoryMiB: 0 }, /"memoryMiB" must be a whole number from 1/],
  [{ kernel: '' }, /"kernel" must be a non-empty string, got ""$/],
  [{ cmdlineBase: 42 }, /"cmdlineBase" must be a string, got 42$/],
  [{ bootProtocol: 'efi' }, /"bootProtocol" must be one of "auto", "linux", "pvh", got "efi"$/],
  [{ irqchip: 'userspace' }, /"irqchip" must be one of "kernel", "split"/],
  [{ serial: 'stdio' }, /"serial" must be \{"kind":"stdio"\}, \{"kind":"null"\} or \{"kind":"file","path":"\.\.\."\}/],
  [{ serial: { kind: 'file' } }, /"serial" must be/],
  [{ rtcBase: 'yesterday' }, /"rtcBase" must be an ISO-8601 time/],
  [{ spinLimit: 0 }, /"spinLimit" must be a whole number from 1 to 10000000/],
  [{ devices: {} }, /"devices" must be a list/],
  [{ devices: [{ kind: 'net' }] }, /"devices\[0\]\.kind" must be one of "rng", "disk", "console", got "net"$/],
  [{ devices: [{ kind: 'disk' }] }, /"devices\[0\]\.path" must be the image file's path/],
  [{ devices: [{ kind: 'disk', path: 'a', ro: true }] }, /unknown field "ro" in a disk device; its fields are kind, path, readonly, serial$/],
  [{ devices: [{ kind: 'disk', path: 'a', readonly: 'yes' }] }, /"devices\[0\]\.readonly" must be a boolean/],
  [{ devices: [{ kind: 'disk', path: 'a', serial: 'x'.repeat(21) }] }, /at most 20 printable ASCII characters/],
  [{ devices: [{ kind: 'disk', path: 'a', serial: 's' }, { kind: 'disk', path: 'b', serial: 's' }] }, /two disks have the serial "s"; give each its own$/],
  [{ devices: [{ kind: 'console' }, { kind: 'console', path: 'x' }] }, /more than one console device; tsvmm has one virtio-console port$/],
  [{ devices: [{ kind: 'console', output: 'tty' }] }, /unknown field "output" in a console device; its fields are kind, path$/],
];

for (const [raw, expected] of refusals) {
  test(`refused: ${JSON.stringify(raw)}`, () => {
    try {
      resolveVmConfig(raw, 'vm.json');
      assert.unreachable('accepted');
    } catch (error) {
      assert.instance(error, TsvmmError);
      assert.is((error as TsvmmError).kind, 'usage');
      assert.match((error as Error).message, expected);
      assert.not.match((error as Error).message, /\n/, 'one line');
    }
  });
}

test.run();

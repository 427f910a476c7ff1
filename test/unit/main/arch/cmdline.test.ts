import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CmdlineError, buildCommandLine, commandLineCapacity } from '../../../../src/main/arch/cmdline';

const text = (bytes: Uint8Array): string => String.fromCharCode(...bytes);

test('without user arguments the line is the base options and a NUL (38 + 1 bytes)', () => {
  const bytes = buildCommandLine(undefined, 4096);
  assert.is(text(bytes), 'console=ttyS0 noacpi reboot=k panic=-1\0');
  assert.is(bytes.length, 39);
  assert.is(text(buildCommandLine('   ', 4096)), 'console=ttyS0 noacpi reboot=k panic=-1\0');
});

test('user arguments follow one space, trimmed', () => {
  const bytes = buildCommandLine('  root=/dev/vda ro  ', 4096);
  assert.is(text(bytes), 'console=ttyS0 noacpi reboot=k panic=-1 root=/dev/vda ro\0');
  assert.is(bytes.length, 56);
});

test('--cmdline-base replaces the base line; an empty base leaves the user arguments alone', () => {
  assert.is(text(buildCommandLine('quiet', 4096, 'console=ttyS0 noacpi reboot=t')), 'console=ttyS0 noacpi reboot=t quiet\0');
  assert.is(text(buildCommandLine(' quiet ', 4096, '')), 'quiet\0');
  assert.is(text(buildCommandLine(undefined, 4096, ' ')), '\0');
  assert.throws(() => buildCommandLine(undefined, 4096, 'console=ttyS0\npanic=0'), (error: Error) => error instanceof CmdlineError && /U\+000a at 13/.test(error.message));
});

test('maxBytes counts the NUL: 39 fits the base line, 38 does not', () => {
  assert.is(buildCommandLine(undefined, 39).length, 39);
  assert.throws(
    () => buildCommandLine(undefined, 38),
    (error: Error) => error instanceof CmdlineError && /is 39 bytes with its NUL but at most 38 fit; shorten the arguments by 1 bytes/.test(error.message),
  );
});

test('a NUL in the arguments is refused', () => {
  assert.throws(() => buildCommandLine('init=/bin/sh\0quiet', 4096), (error: Error) => error instanceof CmdlineError && /NUL byte at character 51/.test(error.message));
});

test('non-ASCII and control characters are refused', () => {
  assert.throws(() => buildCommandLine('hostname=voilà', 4096), (error: Error) => error instanceof CmdlineError && /U\+00e0 at 52/.test(error.message));
  assert.throws(() => buildCommandLine('a\nb', 4096), (error: Error) => error instanceof CmdlineError && /U\+000a/.test(error.message));
});

test('capacity runs from CMDLINE_START 0x20000 to the EBDA at 0x9fc00 when the kernel is at 1 MiB', () => {
  assert.is(commandLineCapacity(0x100000), 0x7fc00);
});

test("capacity is capped by the kernel's cmdline_size plus the NUL", () => {
  assert.is(commandLineCapacity(0x100000, 2047), 2048);
  assert.is(commandLineCapacity(0x100000, 0x100000), 0x7fc00);
});

test('a kernel below the EBDA leaves only the space up to it', () => {
  assert.is(commandLineCapacity(0x30000), 0x10000);
  assert.throws(() => commandLineCapacity(0x20000), (error: Error) => error instanceof CmdlineError);
});

test.run();

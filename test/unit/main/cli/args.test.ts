import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_CPUS, DEFAULT_MEM_MIB, UsageError, parseCli } from '../../../../src/main/cli/args';

test('defaults', () => {
  const options = parseCli([]);
  assert.is(options.cpus, DEFAULT_CPUS);
  assert.is(options.memMiB, DEFAULT_MEM_MIB);
  assert.is(options.kernel, undefined);
  assert.equal(options.serial, { kind: 'stdio' });
  assert.is(options.handOff, 'spin-park');
  assert.is(options.bootProtocol, 'auto');
  assert.is(options.splitIrqchip, false);
});

test('every option is read', () => {
  const options = parseCli(['--kernel', 'k', '--initrd', 'i', '--cmdline', 'a b', '--cpus', '8', '--mem', '512',
    '--boot-protocol', 'pvh', '--split-irqchip', '--serial', 'file:/tmp/x', '--rtc-base', '2026-11-26T08:15:00',
    '--hand-off', 'park', '--spin-limit', '50', '--stats']);
  const { given, ...values } = options;
  assert.equal(
    values,
    {
      help: false, version: false, kernel: 'k', initrd: 'i', bios: undefined, debugcon: undefined, cmdline: 'a b', cmdlineBase: undefined, cpus: 8, memMiB: 512,
      bootProtocol: 'pvh', splitIrqchip: true, serial: { kind: 'file', path: '/tmp/x' },
      handOff: 'park', spinLimit: 50, rtcBase: Date.UTC(2026, 10, 26, 8, 15, 0), stats: 'text', statsFile: undefined, logLevel: undefined, logFile: undefined, config: undefined, restore: undefined, apiSocket: undefined, devices: [],
    },
  );
  assert.equal([...given].sort(), ['boot-protocol', 'cmdline', 'cpus', 'hand-off', 'initrd', 'kernel', 'mem', 'rtc-base', 'serial', 'spin-limit', 'split-irqchip', 'stats']);
});

test('--disk, --rng and --console become devices in command-line order; --disk may repeat, a bare --rng takes /dev/urandom', () => {
  const options = parseCli(['--disk', 'path=a.img', '--rng', '--console', 'file=/tmp/hvc0', '--disk', 'path=b.img,readonly=on,serial=b']);
  assert.equal(options.devices, [
    { kind: 'disk', path: 'a.img', readonly: false },
    { kind: 'rng', source: '/dev/urandom' },
    { kind: 'console', path: '/tmp/hvc0' },
    { kind: 'disk', path: 'b.img', readonly: true, serial: 'b' },
  ]);
  assert.equal(parseCli(['--console', 'tty']).devices, [{ kind: 'console' }]);
  assert.equal(parseCli(['--console', 'off']).devices, []);
  assert.equal(parseCli(['--rng', 'src=/tmp/seed']).devices, [{ kind: 'rng', source: '/tmp/seed' }]);
  assert.throws(() => parseCli(['--console', 'serial']), /--console takes off, tty or file=PATH, got "serial"/);
});

test('--bios names a firmware image; --debugcon takes file:PATH or null, anything else is one line', () => {
  const options = parseCli(['--bios', '/usr/share/seabios/bios.bin', '--debugcon', 'file:/tmp/seabios.log']);
  assert.is(options.bios, '/usr/share/seabios/bios.bin');
  assert.equal(options.debugcon, { kind: 'file', path: '/tmp/seabios.log' });
  assert.equal(parseCli(['--debugcon', 'null']).debugcon, { kind: 'null' });
  assert.is(parseCli([]).debugcon, undefined);
  for (const bad of ['stdio', 'file:', '/tmp/x']) assert.throws(() => parseCli(['--debugcon', bad]), /^--debugcon takes file:PATH or null, got ".*"$/);
  assert.throws(() => parseCli(['--bios', '']), /--bios needs a value/);
});

test('--api-socket names the control socket; it is the process\'s, not a VmConfig field', () => {
  const options = parseCli(['--api-socket', '/run/tsvmm.sock']);
  assert.is(options.apiSocket, '/run/tsvmm.sock');
  assert.ok(options.given.has('api-socket'));
  assert.throws(() => parseCli(['--api-socket', 'a', '--api-socket', 'b']), /--api-socket is given more than once; give it once/);
  assert.throws(() => parseCli(['--api-socket=']), /--api-socket needs a value, got an empty one/);
});

test('--config names a file; only the options given are marked as given', () => {
  const options = parseCli(['--config', 'vm.json', '--cpus', '2']);
  assert.is(options.config, 'vm.json');
  assert.equal([...options.given].sort(), ['config', 'cpus']);
});

test('--rtc-base with an explicit zone keeps it', () => {
  assert.is(parseCli(['--rtc-base', '2026-11-26T10:15:00+02:00']).rtcBase, Date.UTC(2026, 10, 26, 8, 15, 0));
});

test('--rtc-base: a date alone, fractions of a second and a zone are accepted', () => {
  assert.is(parseCli(['--rtc-base', '2026-02-28']).rtcBase, Date.UTC(2026, 1, 28));
  assert.is(parseCli(['--rtc-base', '2024-02-29T23:59:59.5']).rtcBase, Date.UTC(2024, 1, 29, 23, 59, 59, 500));
  assert.is(parseCli(['--rtc-base', '2026-11-26T08:15Z']).rtcBase, Date.UTC(2026, 10, 26, 8, 15));
  assert.is(parseCli(['--rtc-base', '9999-12-31T00:00:00']).rtcBase, Date.UTC(9999, 11, 31));
});

test('--mem: a plain number is MiB; K, M, G and T suffixes (any case, with an optional iB or B) are powers of 1024', () => {
  const mem = (text: string) => parseCli(['--mem', text]).memMiB;
  assert.is(mem('512'), 512);
  assert.is(mem('512M'), 512);
  assert.is(mem('512m'), 512);
  assert.is(mem('2G'), 2048);
  assert.is(mem('2GiB'), 2048);
  assert.is(mem('1gb'), 1024);
  assert.is(mem('65536K'), 64);
  assert.is(mem('1T'), 1024 * 1024);
});

test('--cmdline-base is read as given, and may be empty (the --cmdline alone)', () => {
  assert.is(parseCli(['--cmdline-base', 'console=ttyS0 reboot=t']).cmdlineBase, 'console=ttyS0 reboot=t');
  assert.is(parseCli(['--cmdline-base=']).cmdlineBase, '');
  assert.is(parseCli([]).cmdlineBase, undefined);
  assert.ok(parseCli(['--cmdline-base', 'x']).given.has('cmdline-base'));
});

test('--stats: bare is the text lines, --stats=json and --stats json one JSON object, --stats-file alone implies json', () => {
  assert.is(parseCli([]).stats, 'off');
  assert.is(parseCli(['--stats']).stats, 'text');
  assert.is(parseCli(['--stats', '--cpus', '2']).stats, 'text');
  assert.is(parseCli(['--stats=json']).stats, 'json');
  assert.is(parseCli(['--stats', 'json']).stats, 'json');
  const toFile = parseCli(['--stats-file', '/tmp/stats.json']);
  assert.is(toFile.stats, 'json');
  assert.is(toFile.statsFile, '/tmp/stats.json');
  assert.is(parseCli(['--stats=json', '--stats-file', 'f']).stats, 'json');
});

test('logging: off by default; -v is info, -vv (or -v -v) debug, --log-level any level, --log-file alone info', () => {
  assert.is(parseCli([]).logLevel, undefined);
  assert.is(parseCli(['-v']).logLevel, 'info');
  assert.is(parseCli(['-vv']).logLevel, 'debug');
  assert.is(parseCli(['-v', '-v']).logLevel, 'debug');
  for (const level of ['error', 'warn', 'info', 'debug']) assert.is(parseCli(['--log-level', level]).logLevel, level);
  const toFile = parseCli(['--log-file', '/tmp/tsvmm.log']);
  assert.is(toFile.logLevel, 'info');
  assert.is(toFile.logFile, '/tmp/tsvmm.log');
  assert.is(parseCli(['--log-file', 'f', '--log-level', 'warn']).logLevel, 'warn');
});

test('--spin-limit up to its maximum', () => {
  assert.is(parseCli(['--spin-limit', '10000000']).spinLimit, 10_000_000);
});

const errors: Array<[string[], string]> = [
  [['--cpus', '0'], '--cpus must be at least 1, got 0'],
  [['--cpus', '1.5'], '--cpus takes a whole number, got "1.5"'],
  [['--mem=-4'], '--mem takes a size in MiB or with a K, M or G suffix, such as 512 or 512M or 2G; got "-4"'],
  [['--mem', '1.5G'], '--mem takes a size in MiB or with a K, M or G suffix, such as 512 or 512M or 2G; got "1.5G"'],
  [['--mem', '512X'], '--mem takes a size in MiB or with a K, M or G suffix, such as 512 or 512M or 2G; got "512X"'],
  [['--mem', 'lots'], '--mem takes a size in MiB or with a K, M or G suffix, such as 512 or 512M or 2G; got "lots"'],
  [['--mem', '1000K'], '--mem 1000K is not a whole number of MiB; give a multiple of 1024K, or use M or G'],
  [['--mem', '0'], '--mem must be at least 1M, got 0'],
  [['--mem', '0G'], '--mem must be at least 1M, got 0G'],
  [['--mem', '2T'], '--mem must be at most 1T (1048576 MiB), got 2T'],
  [['--cmdline-base', 'a\0b'], '--cmdline-base must not contain a NUL byte'],
  [['--mem', '-4'], "Option '--mem' argument is ambiguous. Did you forget to specify the option argument for '--mem'? To specify an option argument starting with a dash use '--mem=-XYZ'; see --help"],
  [['--serial', 'tty'], '--serial takes stdio, null or file:PATH, got "tty"'],
  [['--serial', 'file:'], '--serial takes stdio, null or file:PATH, got "file:"'],
  [['--boot-protocol', 'elf'], '--boot-protocol takes linux or pvh, got "elf"'],
  [['--hand-off', 'pigeon'], '--hand-off takes one of spin-park, park, post-message, comlink, native, got "pigeon"'],
  [['--rtc-base', 'yesterday'], '--rtc-base takes an ISO-8601 time such as 2026-11-26T08:15:00, got "yesterday"'],
  [['--cmdline', 'a\0b'], '--cmdline must not contain a NUL byte'],
  [['--initrd', ''], '--initrd needs a value, got an empty one'],
  [['--initrd='], '--initrd needs a value, got an empty one'],
  [['--cmdline='], '--cmdline needs a value, got an empty one'],
  [['--kernel='], '--kernel needs a value, got an empty one'],
  [['--cpus', '1', '--cpus', '2'], '--cpus is given more than once; give it once'],
  [['--kernel=a', '--kernel', 'b'], '--kernel is given more than once; give it once'],
  [['--stats', '--stats'], '--stats is given more than once; give it once'],
  [['--log-level', 'trace'], '--log-level takes one of error, warn, info, debug, got "trace"'],
  [['-v', '--log-level', 'debug'], 'give -v or --log-level, not both'],
  [['-vvv'], '-v takes at most two (-vv, debug)'],
  [['--log-file='], '--log-file needs a value, got an empty one'],
  [['--stats=xml'], '--stats takes text or json (--stats=json), got "xml"'],
  [['--stats', '--stats-file', 'f'], '--stats-file writes the JSON stats; give --stats=json or leave --stats out'],
  [['--stats-file='], '--stats-file needs a value, got an empty one'],
  [['--rtc-base', '0'], '--rtc-base takes an ISO-8601 time such as 2026-11-26T08:15:00, got "0"'],
  [['--rtc-base', '1.5'], '--rtc-base takes an ISO-8601 time such as 2026-11-26T08:15:00, got "1.5"'],
  [['--rtc-base', '2026-02-30'], '--rtc-base: "2026-02-30" is not a date and time that exists; give one such as 2026-11-26T08:15:00'],
  [['--rtc-base', '2026-01-01T24:00:00'], '--rtc-base: "2026-01-01T24:00:00" is not a date and time that exists; give one such as 2026-11-26T08:15:00'],
  [['--rtc-base', '+275760-09-13T00:00:00'], '--rtc-base takes an ISO-8601 time such as 2026-11-26T08:15:00, got "+275760-09-13T00:00:00"'],
  [['--rtc-base', '1969-12-31T23:59:59'], '--rtc-base must be in the years 1970 to 9999 (what the RTC shows), got "1969-12-31T23:59:59"'],
  [['--spin-limit', '1e20'], '--spin-limit takes a whole number, got "1e20"'],
  [['--spin-limit', '100000000000000000000'], '--spin-limit must be at most 10000000, got 100000000000000000000'],
  [['stray'], "Unexpected argument 'stray'. This command does not take positional arguments; see --help"],
];
for (const [argv, message] of errors) {
  test(`rejects ${argv.join(' ')}`, () => {
    try {
      parseCli(argv);
      assert.unreachable('should have thrown');
    } catch (error) {
      assert.instance(error, UsageError);
      assert.is((error as Error).message, message);
    }
  });
}

test.run();

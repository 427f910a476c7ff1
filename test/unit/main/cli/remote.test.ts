// `tsvmm remote` arguments: each command's request, and one usage line for
// every way to get them wrong.

import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseRemote } from '../../../../src/main/cli/remote';
import { TsvmmError } from '../../../../src/shared/errors';

test('each command is its route and method; snapshot DIR becomes an absolute file:// URL', () => {
  const at = ['--api-socket', '/run/vm.sock'];
  assert.equal(parseRemote([...at, 'info']), { socket: '/run/vm.sock', method: 'GET', route: 'vm.info' });
  assert.equal(parseRemote(['counters', ...at]), { socket: '/run/vm.sock', method: 'GET', route: 'vm.counters' });
  for (const command of ['pause', 'resume', 'shutdown']) {
    assert.equal(parseRemote([...at, command]), { socket: '/run/vm.sock', method: 'PUT', route: `vm.${command}` });
  }
  assert.equal(parseRemote([...at, 'snapshot', '/var/tmp/snap 1']), {
    socket: '/run/vm.sock', method: 'PUT', route: 'vm.snapshot', body: { destination_url: 'file:///var/tmp/snap%201' },
  });
  const relative = parseRemote([...at, 'snapshot', 'snaps/one'])!;
  assert.equal(relative.body, { destination_url: `file://${path.resolve('snaps/one')}` });
  assert.is(parseRemote(['--help']), undefined);
});

test('mistakes are one usage line each', () => {
  const cases: Array<[string[], string]> = [
    [['info'], 'remote needs --api-socket PATH, the path given to the running tsvmm'],
    [['--api-socket', '/s'], 'remote needs a command: info, counters, pause, resume, snapshot, shutdown'],
    [['--api-socket', '/s', 'reboot'], 'remote: unknown command "reboot"; use one of info, counters, pause, resume, snapshot, shutdown'],
    [['--api-socket', '/s', 'toString'], 'remote: unknown command "toString"; use one of info, counters, pause, resume, snapshot, shutdown'],
    [['--api-socket', '/s', 'snapshot'], 'remote snapshot takes one directory: tsvmm remote --api-socket PATH snapshot DIR'],
    [['--api-socket', '/s', 'snapshot', 'a', 'b'], 'remote snapshot takes one directory: tsvmm remote --api-socket PATH snapshot DIR'],
    [['--api-socket', '/s', 'pause', 'now'], 'remote pause takes no arguments, got "now"'],
  ];
  for (const [argv, message] of cases) {
    try {
      parseRemote(argv);
      assert.unreachable(argv.join(' '));
    } catch (error) {
      assert.instance(error, TsvmmError);
      assert.is((error as TsvmmError).kind, 'usage');
      assert.is((error as Error).message, message);
    }
  }
  assert.throws(() => parseRemote(['--api-socket', '/s', '--bogus', 'info']), /^remote: Unknown option '--bogus'.*; see tsvmm remote --help$/);
});

test.run();

// The CLI's exit codes: one mapping from how the VM ended and from error kinds.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exitCodeForError, exitCodeForVmExit } from '../../../../src/main/cli/exit-codes';

const nowhere = { unavailable: 'test' };

test('VM exits map to the documented codes', () => {
  assert.is(exitCodeForVmExit({ kind: 'reset', source: 'i8042' }), 0);
  assert.is(exitCodeForVmExit({ kind: 'poweroff' }), 0);
  assert.is(exitCodeForVmExit({ kind: 'stopped', cause: { by: 'console' } }), 0);
  assert.is(exitCodeForVmExit({ kind: 'stopped', cause: { by: 'signal', signal: 'SIGINT' } }), 130);
  assert.is(exitCodeForVmExit({ kind: 'stopped', cause: { by: 'signal', signal: 'SIGTERM' } }), 143);
  assert.is(exitCodeForVmExit({ kind: 'stopped', cause: { by: 'signal', signal: 'SIGHUP' } }), 129);
  assert.is(exitCodeForVmExit({ kind: 'stopped', cause: { by: 'output-error', message: 'EPIPE' } }), 1);
  assert.is(exitCodeForVmExit({ kind: 'triple-fault', vcpu: 0, where: nowhere }), 3);
  assert.is(exitCodeForVmExit({ kind: 'internal-error', vcpu: 0, suberror: 1, data: [], where: nowhere }), 4);
  assert.is(exitCodeForVmExit({ kind: 'unhandled-exit', vcpu: 1, reason: 99, where: nowhere }), 5);
  assert.is(exitCodeForVmExit({ kind: 'vmm-failure', message: 'x' }), 1);
});

test('error kinds map to codes: bad input 2, host and internal failures 1', () => {
  assert.is(exitCodeForError('usage'), 2);
  assert.is(exitCodeForError('guest-image'), 2);
  assert.is(exitCodeForError('host'), 1);
  assert.is(exitCodeForError('internal'), 1);
  assert.is(exitCodeForError('guest-fault'), 5);
});

test.run();

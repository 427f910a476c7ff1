// The process exit codes of the tsvmm command: the only place that maps how a
// VM ended, or what kind of error stopped it, to a number.

import { constants as osConstants } from 'node:os';
import type { ErrorKind } from '../../shared/errors';
import type { VmExit } from '../vmm/vm-exit';

export const EXIT_CODE = {
  guestEnded: 0,
  vmmFailure: 1,
  /** tsvmm remote: the control API answered with an error status. */
  requestRefused: 1,
  usage: 2,
  tripleFault: 3,
  internalError: 4,
  otherGuestFault: 5,
} as const;

/** 128 + the signal's number, as a shell reports a process that a signal ended. */
function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 0);
}

export function exitCodeForVmExit(exit: VmExit): number {
  switch (exit.kind) {
    case 'reset':
    case 'poweroff':
      return EXIT_CODE.guestEnded;
    case 'stopped':
      if (exit.cause.by === 'signal') return signalExitCode(exit.cause.signal);
      if (exit.cause.by === 'output-error' || exit.cause.by === 'timeout') return EXIT_CODE.vmmFailure;
      return EXIT_CODE.guestEnded;
    case 'triple-fault':
      return EXIT_CODE.tripleFault;
    case 'internal-error':
      return EXIT_CODE.internalError;
    case 'fail-entry':
    case 'system-event':
    case 'unexpected-halt':
    case 'unhandled-exit':
      return EXIT_CODE.otherGuestFault;
    case 'vmm-failure':
      return EXIT_CODE.vmmFailure;
  }
}

export function exitCodeForError(kind: ErrorKind): number {
  switch (kind) {
    case 'usage':
    case 'guest-image':
      return EXIT_CODE.usage;
    case 'guest-fault':
      return EXIT_CODE.otherGuestFault;
    case 'host':
    case 'internal':
      return EXIT_CODE.vmmFailure;
  }
}

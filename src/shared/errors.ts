// The one error type of tsvmm. Every module's error derives from TsvmmError
// and says what kind of failure it is, so the CLI (the only place that speaks
// exit codes) maps `kind` to a code instead of matching class names, and the
// library's users can tell a bad kernel from a host problem.

/**
 * - usage: the caller asked for something impossible (arguments, config, API requests);
 * - guest-image: a kernel, initrd, firmware or disk image that cannot be used as given;
 * - host: the host refused (no /dev/kvm, an ioctl failed, a file cannot be opened);
 * - guest-fault: the guest did something that ends the VM;
 * - internal: a tsvmm bug; the message still names where it happened.
 */
export type ErrorKind = 'usage' | 'guest-image' | 'host' | 'guest-fault' | 'internal';

export interface TsvmmErrorOptions {
  /** The step that failed, such as 'read program headers' or 'KVM_SET_CPUID2'. */
  step?: string;
  /** The error this one explains (ES2022 error cause). */
  cause?: unknown;
}

export class TsvmmError extends Error {
  readonly kind: ErrorKind;
  readonly step: string | undefined;

  constructor(kind: ErrorKind, message: string, options: TsvmmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.kind = kind;
    this.step = options.step;
    this.name = new.target.name;
  }
}

/** `error` itself when it is a TsvmmError, else an internal TsvmmError caused by it. */
export function asTsvmmError(error: unknown, step?: string): TsvmmError {
  if (error instanceof TsvmmError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new TsvmmError('internal', message, { step, cause: error });
}

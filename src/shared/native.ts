// The one typed door to the native addon. Everything native returns -errno on
// failure; this module turns that into a KvmError that keeps the errno, its
// symbolic code and the name of the failing operation.

import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import { TsvmmError } from './errors';
import type { NativeExitLoopConfig } from './native-exit-loop';

/** What native/tsvmm_native.cc exports. Negative numbers are -errno. */
export interface NativeAddon {
  open(path: string, flags: number): number;
  close(fd: number): number;
  ioctl(fd: number, request: number, arg?: number | bigint | ArrayBufferView | ArrayBuffer): number;
  run(fd: number, request: number): number;
  mmap(fd: number, length: number, prot: number, flags: number, offset: number): bigint | number;
  munmap(address: bigint, length: number): number;
  view(address: bigint, length: number): ArrayBuffer;
  /** Detaches a view() before its memory is unmapped: kept typed arrays then read as empty. */
  detach(buffer: ArrayBuffer): void;
  /** flock(2) on a file: 0 or -errno. */
  flock(fd: number, operation: number): number;
  /** fallocate(2): 0 or -errno (EOPNOTSUPP where the file system cannot punch holes). */
  fallocate(fd: number, mode: number, offset: number, length: number): number;
  eventfd(initval: number, flags: number): number;
  eventfdWrite(fd: number, value: number | bigint): number;
  /** Reads (and resets) an eventfd's counter: a bigint, or a negative number holding -errno (EAGAIN when zero). */
  eventfdRead(fd: number): bigint | number;
  /**
   * An epoll thread that drains the eventfds added to it and calls `callback`
   * on this thread with the tokens of every fd that fired since the last call
   * (coalesced, each token once). Returns a handle (> 0) or -errno. It does
   * not keep the event loop alive; the environment's teardown closes it.
   */
  watcherCreate(callback: (tokens: number[]) => void): number;
  /** Watches `fd` (made non-blocking) under `token` (uint32); -EEXIST if already watched, -EBADF for a bad handle. */
  watcherAdd(handle: number, fd: number, token: number): number;
  /** Stops watching `fd`; afterwards the watcher never reads it (it may be closed). -ENOENT if not watched. */
  watcherRemove(handle: number, fd: number): number;
  /** Stops and joins the thread and releases the callback; no callback runs afterwards. -EBADF for a bad handle. */
  watcherClose(handle: number): number;
  /**
   * A device waker: `wake` runs on this thread whenever a native exit loop
   * (any thread) rings it, coalesced; it does not keep the event loop alive.
   * Returns a process-wide id (> 0) or -errno.
   */
  deviceWakerCreate(wake: () => void): number;
  /** Closes a waker made on this thread (rings do nothing afterwards): 0, or -EBADF. */
  deviceWakerClose(id: number): number;
  /**
   * The native exit loop of one vCPU (hand-off mode "native"): a handle (> 0).
   * Throws RangeError for a malformed config (native-exit-loop.ts builds it).
   */
  vcpuLoopCreate(config: NativeExitLoopConfig): number;
  /**
   * Runs the guest, handling port and MMIO exits (claimed ones through the
   * exit channel) and EOIs, until an exit for JavaScript: a NATIVE_LOOP_RETURN
   * or -errno (EINTR/EAGAIN only with a request in the control word).
   */
  vcpuLoopRun(handle: number): number;
  /** Waits, as the native loop does (spin, then FUTEX_WAIT), for a hand-off JavaScript published. 0 or -EBADF. */
  vcpuLoopWait(handle: number, sequence: number): number;
  /** FUTEX_WAKE on words[index]: wakes a vCPU parked in the native loop. Waiters woken, or -errno. */
  futexWake(words: Int32Array, index: number): number;
  currentThread(): bigint;
  kick(thread: bigint): number;
  pageSize(): number;
  strerror(errno: number): string;
  readonly kickSignal: number;
}

let addon: NativeAddon | undefined;

/** Loads the addon once per thread (main and each vCPU worker). */
export function native(): NativeAddon {
  if (addon === undefined) {
    // node-gyp-build looks in <root>/build and <root>/prebuilds; the compiled
    // file lives in dist/shared or dist-test/src/shared, so find the package root.
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    addon = load(packageRoot());
  }
  return addon;
}

function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    try {
      const pkg = require(candidate) as { name?: string };
      if (pkg.name === 'tsvmm') return dir;
    } catch {
      // keep walking up
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('tsvmm: cannot find the package root to load the native addon');
    dir = parent;
  }
}

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(osConstants.errno).map(([name, value]) => [value as number, name]),
);

/** A failed system call or ioctl, with the errno kept as data. */
export class KvmError extends TsvmmError {
  readonly errno: number;
  readonly code: string;
  readonly operation: string;

  constructor(operation: string, errno: number, detail?: string) {
    const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
    const text = describeErrno(errno);
    super('host', `${operation} failed: ${code} (${text})${detail ? `: ${detail}` : ''}`, { step: operation });
    this.errno = errno;
    this.code = code;
    this.operation = operation;
  }
}

function describeErrno(errno: number): string {
  try {
    return native().strerror(errno);
  } catch {
    return `errno ${errno}`;
  }
}

/** Throws a KvmError when a native result is -errno; returns it otherwise. */
export function check(operation: string, result: number, detail?: string): number {
  if (result < 0) throw new KvmError(operation, -result, detail);
  return result;
}

export const ERRNO = {
  EINTR: osConstants.errno.EINTR,
  EAGAIN: osConstants.errno.EAGAIN,
  ENOENT: osConstants.errno.ENOENT,
  EACCES: osConstants.errno.EACCES,
  EPERM: osConstants.errno.EPERM,
} as const;

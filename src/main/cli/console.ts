// The host side of COM1: guest output to a file descriptor, host input
// (stdin) into the guest, with raw mode on a terminal and the Ctrl-A x escape.

import * as fs from 'node:fs';
import { TsvmmError } from '../../shared/errors';
import { UsageError } from './args';

/**
 * How OutputSink writes: `write` never blocks (EAGAIN comes back as an
 * error to retry later) and calls back once with what it wrote; `later`
 * runs a callback after a delay. Tests pass fakes.
 */
export interface OutputIo {
  write(data: Uint8Array, callback: (error: NodeJS.ErrnoException | null, written: number) => void): void;
  close(): void;
  later(callback: () => void, ms: number): void;
}

/** How soon a write that found a non-blocking fd full (EAGAIN) is tried again. */
const RETRY_MS = 10;
/** How long flush() waits for a reader that does not read before it gives up on the rest. */
const FLUSH_DEADLINE_MS = 2000;

const later = (callback: () => void, ms: number): void => { setTimeout(callback, ms).unref(); };

/** A non-blocking fd (or a regular file, which never blocks): plain writeSync, EAGAIN passed on. */
function fdIo(fd: number, ownsFd: boolean): OutputIo {
  return {
    write: (data, callback) => {
      let written: number;
      try {
        written = fs.writeSync(fd, data);
      } catch (error) {
        callback(error as NodeJS.ErrnoException, 0);
        return;
      }
      callback(null, written);
    },
    close: () => { if (ownsFd) fs.closeSync(fd); },
    later,
  };
}

/** A socket on fd 1 (how Node's child_process connects stdio 'pipe'): libuv writes it when it is writable. */
function socketIo(fd: number): OutputIo {
  const net = require('node:net') as typeof import('node:net');
  const socket = new net.Socket({ fd, readable: false, writable: true });
  socket.on('error', () => {}); // reported through the write callback
  return {
    write: (data, callback) => {
      socket.write(data, (error) => callback((error as NodeJS.ErrnoException | null | undefined) ?? null, error ? 0 : data.length));
    },
    close: () => { socket.destroy(); },
    later,
  };
}

/**
 * Where fd 1 can be written without blocking the event loop. A pipe, FIFO
 * or terminal is reopened through /proc/self/fd/1 with O_NONBLOCK (a new
 * open file description, so whoever shares fd 1 keeps a blocking one); a
 * socket is handed to libuv; a regular file or /dev/null is written as is.
 */
function stdoutIo(): OutputIo {
  let stats: fs.Stats | undefined;
  try {
    stats = fs.fstatSync(1);
  } catch {
    stats = undefined; // fd 1 closed: the first write reports EBADF
  }
  if (stats?.isSocket()) return socketIo(1);
  if (stats && (stats.isFIFO() || stats.isCharacterDevice())) {
    try {
      const { O_WRONLY, O_NONBLOCK, O_NOCTTY } = fs.constants;
      return fdIo(fs.openSync('/proc/self/fd/1', O_WRONLY | O_NONBLOCK | O_NOCTTY), true);
    } catch {
      // not reopenable (a read-only fd 1, no /proc): fd 1 as it is
    }
  }
  return fdIo(1, false);
}

export interface OutputSinkOptions {
  /** A write failed (EPIPE, ENOSPC, EIO, ...): the output is gone; the owner ends the VM. Called once. */
  onError?: (error: TsvmmError) => void;
  /** The most bytes held while the reader is slow (default 1 MiB). */
  maxBufferedBytes?: number;
}

const ERRNO_TEXT: Record<string, string> = {
  EPIPE: 'its reader went away',
  ENOSPC: 'no space left on device',
  EIO: 'input/output error',
  EBADF: 'the descriptor is not open for writing',
  EINVAL: 'the file does not accept writes',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  EISDIR: 'it is a directory',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a component of the path is not a directory',
  ENXIO: 'a FIFO without a reader, or a device that is not there',
};

/**
 * Guest output on its way to a file descriptor. Writes never block or spin
 * the event loop: bytes are queued and written asynchronously, one write in
 * flight at a time (so the order is the guest's), and a non-blocking fd that
 * is full is tried again after a short delay. When the reader falls more
 * than `maxBufferedBytes` behind, further output is dropped and counted:
 * the UART's transmitter has no flow control to the host (THR always reads
 * empty), so the only other choice would be to stall the guest's vCPUs. A
 * write error is reported once through `onError` and ends the output.
 * `flush()` resolves when everything queued is out, so the last bytes
 * before a reset are not lost.
 */
export class OutputSink {
  private chunks: Uint8Array[] = [];
  private pending = 0;
  private writing = false;
  private scheduled = false;
  private failed = false;
  private closeWhenIdle = false;
  private fdClosed = false;
  private waiters: Array<() => void> = [];
  private readonly maxBufferedBytes: number;
  private readonly onError: (error: TsvmmError) => void;
  /** Bytes dropped because the reader was too far behind (or after a write error). */
  dropped = 0;
  private static readonly WRITE_BYTES = 64 * 1024;

  constructor(private readonly io: OutputIo, private readonly name: string, options: OutputSinkOptions = {}) {
    this.maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
    this.onError = options.onError ?? (() => {});
  }

  /** Opens where COM1's output goes; a --serial file that cannot be opened is a UsageError (one line, exit 2). */
  static open(target: { kind: 'stdio' } | { kind: 'file'; path: string }, options: OutputSinkOptions = {}): OutputSink {
    if (target.kind === 'stdio') return new OutputSink(stdoutIo(), 'stdout', options);
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO without a reader fails (ENXIO) instead of blocking the open.
      const { O_WRONLY, O_CREAT, O_TRUNC, O_NONBLOCK, O_NOCTTY } = fs.constants;
      fd = fs.openSync(target.path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_NOCTTY, 0o666);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'error';
      throw new UsageError(`cannot open --serial file:${target.path}: ${code}${ERRNO_TEXT[code] ? ` (${ERRNO_TEXT[code]})` : ''}; give a path to a writable file`, { cause: error });
    }
    return new OutputSink(fdIo(fd, true), `--serial file:${target.path}`, options);
  }

  write(bytes: Uint8Array): void {
    if (this.failed || this.pending + bytes.length > this.maxBufferedBytes) {
      this.dropped += bytes.length;
      return;
    }
    this.chunks.push(Uint8Array.from(bytes));
    this.pending += bytes.length;
    if (this.pending >= OutputSink.WRITE_BYTES) this.startWrite();
    else if (!this.scheduled) {
      // Coalesce the guest's byte-at-a-time output into one write per event loop turn.
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.startWrite(); });
    }
  }

  /**
   * Resolves when every byte queued so far is written, the output failed, or
   * `deadlineMs` passed with a reader that does not read (what is left then
   * is lost: tsvmm must still exit).
   */
  flush(deadlineMs = FLUSH_DEADLINE_MS): Promise<void> {
    this.startWrite();
    if (this.idle) return Promise.resolve();
    return new Promise((resolve) => {
      let done = false;
      const finish = () => { if (!done) { done = true; resolve(); } };
      this.waiters.push(finish);
      this.io.later(finish, deadlineMs);
    });
  }

  /** Closes the fd (if this sink opened it) once the queued bytes are out. */
  close(): void {
    this.closeWhenIdle = true;
    this.startWrite();
    if (this.idle) this.closeFd();
  }

  private get idle(): boolean {
    return !this.writing && (this.pending === 0 || this.failed);
  }

  private startWrite(): void {
    if (this.writing || this.failed || this.pending === 0) return;
    const data = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks = [];
    this.pending = 0;
    this.writing = true;
    this.writeFrom(data, 0);
  }

  private writeFrom(data: Uint8Array, offset: number): void {
    this.io.write(data.subarray(offset), (error, written) => {
      if (error && error.code === 'EAGAIN') {
        this.io.later(() => this.writeFrom(data, offset), RETRY_MS); // a full non-blocking pipe: wait, do not spin
        return;
      }
      if (error) {
        this.fail(error, data.length - offset);
        return;
      }
      if (offset + written < data.length) {
        this.writeFrom(data, offset + written);
        return;
      }
      this.writing = false;
      if (this.pending > 0) this.startWrite();
      else this.settle();
    });
  }

  private fail(error: NodeJS.ErrnoException, unwritten: number): void {
    this.failed = true;
    this.writing = false;
    this.dropped += unwritten + this.pending;
    this.chunks = [];
    this.pending = 0;
    const code = error.code ?? 'error';
    this.onError(new TsvmmError('host', `cannot write guest output to ${this.name}: ${code}${ERRNO_TEXT[code] ? ` (${ERRNO_TEXT[code]})` : ''}`, { step: 'write guest output', cause: error }));
    this.settle();
  }

  private settle(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
    if (this.closeWhenIdle) this.closeFd();
  }

  private closeFd(): void {
    this.closeWhenIdle = false;
    if (this.fdClosed) return;
    this.fdClosed = true;
    try {
      this.io.close();
    } catch {
      // closing after a failed write may fail again; the fd is gone either way
    }
  }
}

const CTRL_A = 0x01;
const QUIT_KEY = 'x'.charCodeAt(0);
const HELP_KEY = 'h'.charCodeAt(0);

/**
 * What Ctrl-A h prints (QEMU's habit). Lines end in CR LF: the terminal is
 * in raw mode, where LF alone does not return the carriage.
 */
export const ESCAPE_HELP = [
  'tsvmm escape keys (on a terminal):',
  '  Ctrl-A x        quit tsvmm (the guest is stopped, the terminal restored)',
  '  Ctrl-A h        print this help',
  '  Ctrl-A Ctrl-A   send Ctrl-A to the guest',
].join('\r\n') + '\r\n';
/** The one line Ctrl-A x prints, so the user sees why the guest went away. */
export const QUIT_LINE = '\r\ntsvmm: Ctrl-A x: quitting\r\n';

/** Where ConsoleInput sends stdin: a Machine (sendInput, onInputSpace) or a test's fake. */
export interface ConsoleInputTarget {
  /** Queues bytes for the guest; false when the queue is full (the bytes are kept). */
  sendInput(bytes: Uint8Array): boolean;
  /** Calls back each time the queue has room again after sendInput returned false; returns a remover. */
  onInputSpace(callback: () => void): () => void;
}

/**
 * Feeds stdin to the guest. On a terminal, switches it to raw mode (restored
 * by dispose on every exit path) and watches for Ctrl-A x, which quits
 * with one line, and Ctrl-A h, which lists the escape keys; Ctrl-A Ctrl-A
 * sends one Ctrl-A to the guest.
 *
 * When the guest's input queue is full (it reads slower than stdin comes, or
 * not at all), a pipe or file is paused, so tsvmm holds a bounded amount and
 * the writer blocks, and resumed when the queue has room again. A terminal
 * is never paused, so Ctrl-A x always works: what is typed while the queue
 * is full is dropped (counted in `dropped`), as a UART without flow control
 * would overrun.
 */
export class ConsoleInput {
  private rawMode = false;
  private escapePending = false;
  private full = false;
  private paused = false;
  private removeSpaceListener?: () => void;
  /** Bytes typed on a terminal while the guest's queue was full. */
  dropped = 0;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);

  constructor(
    private readonly target: ConsoleInputTarget,
    private readonly onQuit: () => void,
    private readonly stdin: NodeJS.ReadStream = process.stdin,
    /** Where the escape keys' own output goes (not the guest's): stderr. */
    private readonly say: (text: string) => void = (text) => { process.stderr.write(text); },
  ) {}

  start(): void {
    if (this.stdin.isTTY) {
      this.stdin.setRawMode(true);
      this.rawMode = true;
    }
    this.removeSpaceListener = this.target.onInputSpace(() => this.space());
    this.stdin.on('data', this.onData);
    this.stdin.on('error', () => this.stdin.off('data', this.onData));
    this.stdin.resume();
  }

  private receive(chunk: Buffer): void {
    if (!this.rawMode) {
      this.send(chunk);
      return;
    }
    const forward: number[] = [];
    for (const byte of chunk) {
      if (this.escapePending) {
        this.escapePending = false;
        if (byte === QUIT_KEY) {
          this.say(QUIT_LINE);
          this.onQuit();
          return;
        }
        if (byte === HELP_KEY) this.say(ESCAPE_HELP);
        else forward.push(byte);
      } else if (byte === CTRL_A) {
        this.escapePending = true;
      } else {
        forward.push(byte);
      }
    }
    if (forward.length > 0) this.send(Uint8Array.from(forward));
  }

  private send(bytes: Uint8Array): void {
    if (this.full && this.rawMode) {
      this.dropped += bytes.length;
      return;
    }
    if (this.target.sendInput(bytes)) return;
    this.full = true;
    if (!this.rawMode) {
      this.paused = true;
      this.stdin.pause();
    }
  }

  private space(): void {
    this.full = false;
    if (this.paused) {
      this.paused = false;
      this.stdin.resume();
    }
  }

  dispose(): void {
    this.stdin.off('data', this.onData);
    this.removeSpaceListener?.();
    this.removeSpaceListener = undefined;
    if (this.rawMode) {
      this.stdin.setRawMode(false);
      this.rawMode = false;
    }
    this.paused = false;
    this.stdin.pause();
    // Let the process exit even though stdin was read.
    (this.stdin as unknown as { unref?: () => void }).unref?.();
  }
}

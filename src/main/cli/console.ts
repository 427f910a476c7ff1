// The host side of COM1: guest output to a file descriptor, host input
// (stdin) into the guest, with raw mode on a terminal and the Ctrl-A x escape.

import * as fs from 'node:fs';

/**
 * Collects guest output and writes it with synchronous writes, one per event
 * loop turn or per 4 KiB: output order is the guest's, and nothing is lost
 * when the VMM exits right after the guest's last byte.
 */
export class OutputSink {
  private chunks: Uint8Array[] = [];
  private pending = 0;
  private scheduled = false;
  private static readonly FLUSH_BYTES = 4096;

  constructor(private readonly fd: number, private readonly ownsFd: boolean) {}

  static open(target: { kind: 'stdio' } | { kind: 'file'; path: string }): OutputSink {
    if (target.kind === 'stdio') return new OutputSink(1, false);
    return new OutputSink(fs.openSync(target.path, 'w'), true);
  }

  write(bytes: Uint8Array): void {
    this.chunks.push(Uint8Array.from(bytes));
    this.pending += bytes.length;
    if (this.pending >= OutputSink.FLUSH_BYTES) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending === 0) return;
    const data = Buffer.concat(this.chunks);
    this.chunks = [];
    this.pending = 0;
    let offset = 0;
    while (offset < data.length) {
      try {
        offset += fs.writeSync(this.fd, data, offset);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') continue; // a non-blocking pipe that is full: retry
        if (code === 'EPIPE') return; // the reader went away: drop the output
        throw error;
      }
    }
  }

  close(): void {
    this.flush();
    if (this.ownsFd) fs.closeSync(this.fd);
  }
}

const CTRL_A = 0x01;
const QUIT_KEY = 'x'.charCodeAt(0);

/**
 * Feeds stdin to the guest. On a terminal, switches it to raw mode (restored
 * by dispose on every exit path) and watches for Ctrl-A x, which quits;
 * Ctrl-A Ctrl-A sends one Ctrl-A to the guest.
 */
export class ConsoleInput {
  private rawMode = false;
  private escapePending = false;
  private readonly onData = (chunk: Buffer) => this.receive(chunk);

  constructor(
    private readonly deliver: (bytes: Uint8Array) => void,
    private readonly onQuit: () => void,
    private readonly stdin: NodeJS.ReadStream = process.stdin,
  ) {}

  start(): void {
    if (this.stdin.isTTY) {
      this.stdin.setRawMode(true);
      this.rawMode = true;
    }
    this.stdin.on('data', this.onData);
    this.stdin.on('error', () => this.stdin.off('data', this.onData));
    this.stdin.resume();
  }

  private receive(chunk: Buffer): void {
    if (!this.rawMode) {
      this.deliver(chunk);
      return;
    }
    const forward: number[] = [];
    for (const byte of chunk) {
      if (this.escapePending) {
        this.escapePending = false;
        if (byte === QUIT_KEY) {
          this.onQuit();
          return;
        }
        forward.push(byte);
      } else if (byte === CTRL_A) {
        this.escapePending = true;
      } else {
        forward.push(byte);
      }
    }
    if (forward.length > 0) this.deliver(Uint8Array.from(forward));
  }

  dispose(): void {
    this.stdin.off('data', this.onData);
    if (this.rawMode) {
      this.stdin.setRawMode(false);
      this.rawMode = false;
    }
    this.stdin.pause();
    // Let the process exit even though stdin was read.
    (this.stdin as unknown as { unref?: () => void }).unref?.();
  }
}

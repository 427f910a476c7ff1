// QEMU as the reference VMM for the test guests: find it, boot a guest with
// KVM, and return what the guest wrote to COM1 (SeaBIOS's banner and the
// terminal escape codes removed).

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as assert from 'uvu/assert';
import { guest } from './tsvmm';

export const QEMU = 'qemu-system-x86_64';
/** A PC with 128 MiB and COM1 on stdio: what the guests' checks assume. */
export const QEMU_BASE_ARGS = ['-accel', 'kvm', '-M', 'pc', '-m', '128', '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio'];
/** A guest runs in about 3 s under QEMU (mostly SeaBIOS); QEMU is killed after this long. */
export const QEMU_TIMEOUT_MS = 30_000;
/** SeaBIOS prints this (without a newline) just before it jumps to the guest's PVH entry. */
const SEABIOS_BANNER_END = 'Booting from ROM..';

export const QEMU_MISSING = `not checked: ${QEMU} is not installed (apt-get install qemu-system-x86)`;

/** The full path of an executable on PATH, or undefined. */
export function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** QEMU's path, or undefined when it is not installed. */
export function findQemu(): string | undefined {
  return which(QEMU);
}

/** What a spawned VMM wrote to COM1 (its stdout) and how it ended. */
export interface SerialRun {
  /** Everything on COM1 as it came. */
  raw: string;
  /** The same without terminal escape sequences and carriage returns. */
  output: string;
  /** Its lines, without the empty string after the final newline. */
  lines: string[];
  status: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stderr: string;
  /** Wall-clock time from spawn to exit. */
  ms: number;
}

export function stripTerminal(text: string): string {
  return text.replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[A-Za-z]/g, '').replace(/\r/g, '');
}

function splitLines(output: string): string[] {
  const lines = output.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Spawns `command args` (QEMU, or tsvmm), collects stdout as COM1, kills it after `timeoutMs`. */
export function runCollectingSerial(command: string, args: string[], timeoutMs: number): Promise<SerialRun> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const raw = Buffer.concat(stdout).toString('latin1');
      const output = stripTerminal(raw);
      resolve({ raw, output, lines: splitLines(output), status, signal, timedOut, stderr: Buffer.concat(stderr).toString('utf8'), ms: Date.now() - started });
    });
  });
}

/** A QEMU boot's COM1 after SeaBIOS's banner (`output` and `lines` start there). */
export type QemuRun = Omit<SerialRun, 'raw' | 'ms'>;

/** Boots `kernel` under QEMU with KVM (`extraArgs` before -kernel) and collects COM1 after SeaBIOS's banner. */
export async function runQemu(qemu: string, kernel: string, extraArgs: string[] = [], timeoutMs = QEMU_TIMEOUT_MS): Promise<QemuRun> {
  const run = await runCollectingSerial(qemu, [...QEMU_BASE_ARGS, ...extraArgs, '-kernel', kernel], timeoutMs);
  const banner = run.output.lastIndexOf(SEABIOS_BANNER_END);
  const output = banner >= 0 ? run.output.slice(banner + SEABIOS_BANNER_END.length) : run.output;
  return { output, lines: splitLines(output), status: run.status, signal: run.signal, timedOut: run.timedOut, stderr: run.stderr };
}

/** Boots test guest `name` under QEMU, asserts that QEMU ended by itself (reset or triple fault), and returns the guest's lines. */
export async function bootQemu(qemu: string, name: string, extraArgs: string[] = []): Promise<string[]> {
  const run = await runQemu(qemu, guest(name), extraArgs);
  const context = `${name} ${extraArgs.join(' ')}: output ${JSON.stringify(run.output)}, stderr ${JSON.stringify(run.stderr)}`;
  assert.not.ok(run.timedOut, `QEMU still running after ${QEMU_TIMEOUT_MS} ms and killed; ${context}`);
  assert.is(run.status, 0, `QEMU exit status; ${context}`);
  return run.lines;
}

// Runs the built tsvmm CLI (dist/main.js) as a user would, for KVM tests.

import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (fs.existsSync(candidate) && JSON.parse(fs.readFileSync(candidate, 'utf8')).name === 'tsvmm') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package root not found');
    dir = parent;
  }
}

export const ROOT = packageRoot();
export const MAIN = path.join(ROOT, 'dist', 'main.js');

/** guests/out/<name>.elf, which the build makes; a missing one says how to get it. */
export function guest(name: string): string {
  const file = path.join(ROOT, 'guests', 'out', `${name}.elf`);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: build the guests with \`make -C guests\` (npm run build does)`);
  return file;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Called with the accumulated stdout; return true to send SIGTERM. */
  stopWhen?: (stdout: string) => boolean;
  nodeArgs?: string[];
  /** Text written to stdin once stdout contains the trigger (each pair once, in order). */
  respond?: Array<[trigger: string, input: string]>;
  /** Signal sent instead of SIGTERM when stopWhen fires. */
  stopSignal?: NodeJS.Signals;
}

/** Runs `node dist/main.js ...args`; never rejects. */
export function runTsvmm(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), MAIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
      stdio: [options.respond ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const responses = [...(options.respond ?? [])];
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let stopSent = false;
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('latin1');
      while (responses.length > 0 && stdout.includes(responses[0][0])) {
        child.stdin?.write(responses.shift()![1]);
      }
      if (!stopSent && options.stopWhen?.(stdout)) {
        stopSent = true;
        child.kill(options.stopSignal ?? 'SIGTERM');
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** The result in a form that explains a failed assertion. */
export function explain(result: RunResult): string {
  return `exit ${result.code}${result.signal ? ` signal ${result.signal}` : ''}${result.timedOut ? ' (timed out)' : ''}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
}

/** A tsvmm CLI process a test drives while it runs (signals, its socket), with its output so far. */
export interface TsvmmChild {
  process: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  ended: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `node dist/main.js ...args`; `stdin` 'pipe' gives the test its stdin, 'ignore' gives it none. */
export function startTsvmm(args: string[], stdin: 'pipe' | 'ignore'): TsvmmChild {
  const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: [stdin, 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString('latin1'); });
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  return { process: child, stdout: () => stdout, stderr: () => stderr, ended };
}

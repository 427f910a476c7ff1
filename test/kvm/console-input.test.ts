// COM1 input from a pipe (issue 12 items 3 and 6): not one byte lost or
// reordered, whether it was piped before the guest programmed the UART or
// pasted in bulk into an interrupt-driven guest; a polling guest gets all of
// it; and a guest that never reads COM1 does not make tsvmm queue a large
// input without bound: tsvmm stops reading stdin until the guest takes more.

import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAIN, ROOT, RunResult, explain, guest, runTsvmm } from '../support/tsvmm';

interface PipedRun extends RunResult {
  /** The largest VmRSS seen in tsvmm's /proc/PID/status, in KiB (0 when not sampled). */
  peakRssKiB: number;
  /** Bytes the writer got into tsvmm's stdin before it exited. */
  written: number;
  ms: number;
}

/**
 * Runs tsvmm with stdin a pipe that `produce` fills as fast as tsvmm reads
 * (honouring the pipe's backpressure), sampling tsvmm's VmRSS every 50 ms.
 */
function runPiped(args: string[], produce: Iterable<Uint8Array>, timeoutMs = 60_000): Promise<PipedRun> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let peakRssKiB = 0;
    let written = 0;
    let exited = false;
    child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString('latin1'); });
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
    child.stdin!.on('error', () => {}); // EPIPE once tsvmm exits with input unread
    const chunks = produce[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        if (exited) return;
        const next = chunks.next();
        if (next.done) {
          child.stdin!.end();
          return;
        }
        written += next.value.length;
        if (!child.stdin!.write(next.value)) {
          child.stdin!.once('drain', pump);
          return;
        }
      }
    };
    pump();
    const sample = setInterval(() => {
      try {
        const match = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (match) peakRssKiB = Math.max(peakRssKiB, Number(match[1]));
      } catch {
        // exited between samples
      }
    }, 50);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('exit', () => { exited = true; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearInterval(sample);
      resolve({ code, signal, stdout, stderr, timedOut, peakRssKiB, written, ms: Date.now() - started });
    });
  });
}

const encode = (text: string) => new TextEncoder().encode(text);

/** 2,000 lines of mixed case and length, about 20 KB, like a pasted text file. */
function pastedLines(): string[] {
  const lines: string[] = [];
  for (let i = 0; i < 2000; i++) lines.push(`l${i} ${'aZ'.repeat(i % 4)}`);
  return lines;
}

function expectEchoed(result: RunResult, lines: string[]): void {
  assert.is(result.code, 0, explain(result));
  const got = result.stdout.split('\n');
  const expected = ['echo: ready', ...lines.map((line) => `echo: ${line.toUpperCase()}`), 'echo: bye', ''];
  const firstWrong = expected.findIndex((line, i) => got[i] !== line);
  assert.is(firstWrong, -1, `line ${firstWrong} differs: got ${JSON.stringify(got[firstWrong])}, want ${JSON.stringify(expected[firstWrong])}; ${got.length - 1} lines came back of ${expected.length - 1}\n${explain(result).slice(0, 2000)}`);
  assert.is(got.length, expected.length, explain(result).slice(0, 2000));
}

test('input piped before the guest programs the UART keeps its first byte: printf "hello world\\nquit\\n" | tsvmm echo', async () => {
  const result = await runPiped(['--kernel', guest('echo')], [encode('hello world\nquit\n')]);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, 'echo: ready\necho: HELLO WORLD\necho: bye\n', explain(result));
});

test('2,000 lines piped into the interrupt-driven echo guest all come back upper-cased, in order, then "echo: bye"', async () => {
  const lines = pastedLines();
  const result = await runPiped(['--kernel', guest('echo')], [encode(`${lines.join('\n')}\nquit\n`)]);
  expectEchoed(result, lines);
});

test('2,000 lines pasted at once after "echo: ready" all come back upper-cased, in order, then "echo: bye"', async () => {
  const lines = pastedLines();
  const result = await runTsvmm(['--kernel', guest('echo')], {
    respond: [['echo: ready\n', `${lines.join('\n')}\nquit\n`]],
    timeoutMs: 60_000,
  });
  expectEchoed(result, lines);
});

test('a polling guest (LSR.DR then RBR, no interrupts) gets 64 KiB piped before it is up, whole and in order', async () => {
  const size = 64 * 1024;
  const data = new Uint8Array(size + 1);
  let hash = 0x811c9dc5;
  let seed = 12345;
  for (let i = 0; i < size; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const byte = 0x20 + ((seed >>> 16) % 95); // printable: never the EOT that ends the input
    data[i] = byte;
    hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  }
  data[size] = 0x04;
  const result = await runPiped(['--kernel', guest('pollread')], [data], 120_000);
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, `pollread: ready\npollread: ${size} bytes, fnv1a 0x${hash.toString(16).padStart(8, '0')}\n`, explain(result));
  console.log(`  (64 KiB polled in ${result.ms} ms)`);
});

test('512 MiB piped into a guest that never reads COM1: VmRSS stays under 200 MiB and tsvmm exits 0 when the guest resets', async () => {
  const chunk = new Uint8Array(1024 * 1024).fill(0x61);
  function* generator(): Iterable<Uint8Array> {
    for (let i = 0; i < 512; i++) yield chunk;
  }
  const result = await runPiped(['--kernel', guest('noread')], generator());
  assert.is(result.code, 0, explain(result));
  assert.is(result.stdout, 'noread: spinning\nnoread: done\n', explain(result));
  assert.ok(result.peakRssKiB > 0, 'VmRSS was sampled');
  assert.ok(result.peakRssKiB < 200 * 1024, `peak VmRSS ${Math.round(result.peakRssKiB / 1024)} MiB (the pipe took ${Math.round(result.written / 1024 / 1024)} MiB)`);
  console.log(`  (peak VmRSS ${Math.round(result.peakRssKiB / 1024)} MiB; ${Math.round(result.written / 1024 / 1024)} MiB written into the pipe; ${result.ms} ms)`);
});

test.run();

// Signals a user can send to tsvmm (issue 12 items 1 and 8).
//
// SIGUSR1 must never open Node's inspector (an unauthenticated debugger on
// 127.0.0.1:9229): not while the VM is being built, not while it runs; during
// the run it stops the VM like SIGTERM. And every catchable signal that would
// end the process (SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM,
// SIGTERM) stops the VM, restores the terminal, says "stopped by SIGxxx" and
// exits 128 + the signal's number.

import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MAIN, TsvmmChild, guest, startTsvmm } from '../support/tsvmm';

const INSPECTOR_PORT = 9229;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves true if something accepts a TCP connection on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setTimeout(2000, () => { socket.destroy(); resolve(false); });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/** Local addresses in LISTEN state (st 0A) on the port, from /proc/net/tcp and tcp6. */
function listeners(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!fs.existsSync(table)) continue;
    for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (fields.length > 3 && fields[1].endsWith(`:${hexPort}`) && fields[3] === '0A') found.push(`${table}: ${fields[1]}`);
    }
  }
  return found;
}

async function assertNoInspector(when: string, stderr: string): Promise<void> {
  assert.is(await accepts(INSPECTOR_PORT), false, `${when}: something accepts connections on 127.0.0.1:${INSPECTOR_PORT}; stderr: ${stderr}`);
  assert.equal(listeners(INSPECTOR_PORT), [], `${when}: a socket listens on port ${INSPECTOR_PORT}`);
  assert.not.match(stderr, /Debugger listening/, `${when}: Node says its inspector is open`);
}

function taskCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return -1;
  }
}

/** How many of the process's fds are KVM's (/dev/kvm, kvm-vm, kvm-vcpu). */
function kvmFds(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
      try {
        return /kvm/.test(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false;
      }
    }).length;
  } catch {
    return -1;
  }
}

/** The task count of an idle Node process that runs no script of ours: Node's own threads. */
async function nodeOwnTasks(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { stdio: 'ignore' });
  await sleep(1000);
  const count = taskCount(child.pid!);
  child.kill('SIGKILL');
  return count;
}

type Child = TsvmmChild;

const start = (args: string[]): Child => startTsvmm(args, 'pipe');

async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Ends the child if it is still there, and reports how it ended. */
async function finish(child: Child, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
  const timer = sleep(timeoutMs).then(() => undefined);
  const result = await Promise.race([child.ended, timer]);
  if (result) return { ...result, timedOut: false };
  child.process.kill('SIGKILL');
  return { ...(await child.ended), timedOut: true };
}

test('SIGUSR1 while the VM is being built and again while it runs: no inspector port, then "stopped by SIGUSR1" and exit 138', async () => {
  assert.equal(listeners(INSPECTOR_PORT), [], `port ${INSPECTOR_PORT} is already in use on this host; cannot check`);
  const ownTasks = await nodeOwnTasks();
  // 8 vCPUs: the VM takes long enough to build that the first signal lands before it exists.
  const child = start(['--kernel', guest('echo'), '--cpus', '8']);
  try {
    // tsvmm's first line has run once it starts its first vCPU worker (a
    // thread beyond Node's own); the VM does not exist until /dev/kvm is open.
    // Before that line nothing of tsvmm's can listen: that is Node's own start-up.
    const pid = child.process.pid!;
    await waitFor('the first vCPU worker thread', () => taskCount(pid) > ownTasks, 10_000);
    const kvmFdsAtEarlySignal = kvmFds(pid);
    child.process.kill('SIGUSR1');
    assert.is(kvmFdsAtEarlySignal, 0, 'the early SIGUSR1 was sent before /dev/kvm was opened');
    await waitFor('"echo: ready"', () => child.stdout().includes('echo: ready\n') || child.process.exitCode !== null, 20_000);
    assert.ok(child.process.exitCode === null && child.process.signalCode === null, `tsvmm ended after the early SIGUSR1: ${child.stderr()}`);
    await assertNoInspector('after a SIGUSR1 while the VM was being built', child.stderr());

    child.process.kill('SIGUSR1');
    const ended = await finish(child, 15_000);
    assert.is(ended.timedOut, false, `tsvmm did not stop on SIGUSR1 during the run; stderr: ${child.stderr()}`);
    assert.is(ended.code, 138, `exit ${ended.code} signal ${ended.signal}; stderr: ${child.stderr()}`);
    assert.is(child.stderr(), 'tsvmm: stopped by SIGUSR1\n', 'one line, no stack trace');
    await assertNoInspector('after a SIGUSR1 during the run', child.stderr());
  } finally {
    child.process.kill('SIGKILL');
  }
});

test('SIGUSR1 during a run with --serial null: no inspector port, "stopped by SIGUSR1", exit 138', async () => {
  const child = start(['--kernel', guest('echo'), '--serial', 'null']);
  try {
    const pid = child.process.pid!;
    // No console: the VM runs once its vCPU fd exists and a moment has passed.
    await waitFor('the vCPU fd', () => kvmFds(pid) >= 3, 20_000);
    await sleep(500);
    child.process.kill('SIGUSR1');
    const ended = await finish(child, 15_000);
    assert.is(ended.timedOut, false, `tsvmm did not stop on SIGUSR1; stderr: ${child.stderr()}`);
    assert.is(ended.code, 138, `exit ${ended.code} signal ${ended.signal}; stderr: ${child.stderr()}`);
    assert.is(child.stderr(), 'tsvmm: stopped by SIGUSR1\n', 'one line, no stack trace');
    await assertNoInspector('after a SIGUSR1 during the run', child.stderr());
  } finally {
    child.process.kill('SIGKILL');
  }
});

// ---- On a terminal: script(1) gives tsvmm a pseudo-terminal, as console.test.ts does ----

const haveScript = spawnSync('sh', ['-c', 'command -v script'], { stdio: 'ignore' }).status === 0;

const SIGNALS = ['SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGTERM'] as const;

for (const signal of SIGNALS) {
  const code = 128 + os.constants.signals[signal];
  test(`${signal} on a terminal: terminal mode restored, "stopped by ${signal}", exit ${code}`, async () => {
    if (!haveScript) {
      console.log('not checked: util-linux script(1) is not installed');
      return;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-signal-'));
    const file = (name: string) => path.join(dir, name);
    // The inner shell records the terminal's mode, runs tsvmm in the
    // foreground under its own pid (exec), then records the mode again.
    const inner = `tty > ${file('tty')}; stty -g > ${file('before')}; `
      + `sh -c 'echo $$ > ${file('pid')}; exec ${process.execPath} ${MAIN} --kernel ${guest('echo')}'; `
      + `echo "exit=$?"; stty -g > ${file('after')}`;
    const script = spawn('script', ['-qefc', inner, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    script.stdout!.on('data', (chunk: Buffer) => { output += chunk.toString('latin1'); });
    script.stderr!.on('data', (chunk: Buffer) => { output += chunk.toString('latin1'); });
    const ended = new Promise<number | null>((resolve) => script.on('close', (status) => resolve(status)));
    const clean = () => output.replace(/\r/g, '');
    let pid = 0;
    try {
      await waitFor('"echo: ready"', () => clean().includes('echo: ready\n'), 20_000);
      pid = Number(fs.readFileSync(file('pid'), 'utf8'));
      const tty = fs.readFileSync(file('tty'), 'utf8').trim();
      const before = fs.readFileSync(file('before'), 'utf8');
      // tsvmm really has the terminal in raw mode while the guest runs.
      const ttyFd = fs.openSync(tty, 'r');
      const during = spawnSync('stty', ['-g'], { stdio: [ttyFd, 'pipe', 'pipe'], encoding: 'utf8' }).stdout;
      fs.closeSync(ttyFd);
      assert.is.not(during, before, `the terminal ${tty} is in raw mode while tsvmm runs`);
      process.kill(pid, signal);
      await waitFor('the shell after tsvmm', () => fs.existsSync(file('after')) && /exit=\d+\n/.test(clean()), 20_000);
      await Promise.race([ended, sleep(5000)]);
      const after = fs.readFileSync(file('after'), 'utf8');
      const text = clean();
      assert.is(after, before, `terminal settings restored after ${signal}; output: ${text}`);
      assert.match(text, new RegExp(`tsvmm: stopped by ${signal}\\n`), text);
      assert.match(text, new RegExp(`exit=${code}\\n`), text);
      assert.not.match(text, /\n\s+at /, `no stack trace: ${text}`);
    } finally {
      if (pid > 0) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
      script.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();

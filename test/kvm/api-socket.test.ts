// The control API end to end (issue 10): a real tsvmm running guests/chatty
// (numbered lines on COM1 for ever) with --api-socket, driven over the socket
// and through `tsvmm remote`: info, counters, pause (the lines stop), resume
// (they go on, none lost), the 4xx answers that leave the VM running,
// shutdown (exit 0, socket gone); stale and live sockets; the socket file
// removed on SIGINT, SIGTERM and a guest fault.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { apiRequest } from '../../src/main/api/client';
import { MAIN, ROOT, TsvmmChild, guest, startTsvmm } from '../support/tsvmm';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-api-kvm-'));
let count = 0;
const socketPath = () => path.join(dir, `vm${count++}.sock`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Child = TsvmmChild;

const start = (args: string[]): Child => startTsvmm(args, 'ignore');

async function waitFor(what: string, condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Waits for the child to end; kills it after `timeoutMs` so that a failing test never hangs. */
async function finish(child: Child, timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
  const result = await Promise.race([child.ended, sleep(timeoutMs).then(() => undefined)]);
  if (result) return { ...result, timedOut: false };
  child.process.kill('SIGKILL');
  return { ...(await child.ended), timedOut: true };
}

/** chatty under tsvmm serving the API on `socket`, once its socket is there and the guest prints. */
async function chatty(socket: string, extra: string[] = []): Promise<Child> {
  const child = start(['--kernel', guest('chatty'), '--api-socket', socket, ...extra]);
  await waitFor('the API socket and the first line', () => (fs.existsSync(socket) && child.stdout().includes('chatty: line 1\n')) || child.process.exitCode !== null);
  assert.is(child.process.exitCode, null, `tsvmm ended early: ${child.stderr()}`);
  return child;
}

/** The numbers of the complete "chatty: line N" lines, which must count up by one from 0. */
function lineNumbers(stdout: string): number[] {
  const lines = stdout.split('\n').slice(0, -1);
  return lines.map((line, i) => {
    assert.is(line, `chatty: line ${i}`, 'every line, in order, none lost or repeated');
    return i;
  });
}

/** `tsvmm remote ...` as a user runs it. */
function remote(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [MAIN, 'remote', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

const errorOf = (body: unknown) => (body as { error: string }).error;

test('over the socket: info, counters, pause stops the guest, resume continues it, 4xx answers leave it running, shutdown ends it with exit 0', async () => {
  const socket = socketPath();
  const child = await chatty(socket);
  try {
    assert.is((fs.statSync(socket).mode & 0o777), 0o600, 'the socket is its owner\'s alone');
    const info = await apiRequest(socket, 'GET', 'vm.info');
    assert.is(info.status, 200);
    const body = info.body as { config: { kernel: string; cpus: number }; state: string; vcpus: unknown[]; devices: Array<{ id: string; base: number }> };
    assert.is(body.state, 'running');
    assert.is(body.config.kernel, guest('chatty'));
    assert.equal(body.vcpus, [{ id: 0 }]);
    assert.is(body.devices.find((device) => device.id === 'com1')?.base, 0x3f8);

    const first = await apiRequest(socket, 'GET', 'vm.counters');
    assert.is(first.status, 200);
    const exitsOf = (reply: { body: unknown }) => (reply.body as { vcpus: Array<{ ioExits: number }> }).vcpus[0].ioExits;
    const servedOf = (reply: { body: unknown }) => (reply.body as { deviceThread: { served: number } }).deviceThread.served;
    assert.ok(exitsOf(first) > 0 && servedOf(first) > 0, JSON.stringify(first.body));

    assert.equal(await apiRequest(socket, 'PUT', 'vm.pause'), { status: 200, body: { state: 'paused' } });
    // Bytes written before the pause may still be on their way through the pipe.
    await sleep(300);
    const atPause = child.stdout().length;
    const countersAtPause = exitsOf(await apiRequest(socket, 'GET', 'vm.counters'));
    await sleep(1000);
    assert.is(child.stdout().length, atPause, 'no output while paused');
    assert.is(exitsOf(await apiRequest(socket, 'GET', 'vm.counters')), countersAtPause, 'no exits while paused');
    assert.is(((await apiRequest(socket, 'GET', 'vm.info')).body as { state: string }).state, 'paused');
    const twice = await apiRequest(socket, 'PUT', 'vm.pause');
    assert.is(twice.status, 409);
    assert.match(errorOf(twice.body), 'already paused');
    const early = await apiRequest(socket, 'PUT', 'vm.snapshot', { destination_url: 'relative/dir' });
    assert.is(early.status, 400, 'a bad snapshot body is refused before anything is saved');

    assert.equal(await apiRequest(socket, 'PUT', 'vm.resume'), { status: 200, body: { state: 'running' } });
    await waitFor('output after resume', () => child.stdout().length > atPause + 50, 20_000);
    const again = await apiRequest(socket, 'PUT', 'vm.resume');
    assert.is(again.status, 409);
    assert.match(errorOf(again.body), 'running, not paused');
    const running = await apiRequest(socket, 'PUT', 'vm.snapshot', { destination_url: `file://${dir}/snap` });
    assert.is(running.status, 409);
    assert.match(errorOf(running.body), 'needs a paused VM');

    assert.is((await apiRequest(socket, 'GET', 'vm.boot')).status, 404);
    assert.is((await apiRequest(socket, 'GET', 'vm.pause')).status, 405);
    assert.is((await apiRequest(socket, 'PUT', 'vm.pause', 'not an object')).status, 400);
    assert.is((await apiRequest(socket, 'PUT', 'vm.pause', { force: true })).status, 400);
    const atEnd = child.stdout().length;
    await waitFor('output after the refused requests', () => child.stdout().length > atEnd + 50, 20_000);
    assert.is(((await apiRequest(socket, 'GET', 'vm.info')).body as { state: string }).state, 'running');

    assert.equal(await apiRequest(socket, 'PUT', 'vm.shutdown'), { status: 200, body: { state: 'stopping' } });
    const ended = await finish(child);
    assert.equal(ended, { code: 0, signal: null, timedOut: false }, child.stderr());
    assert.is(child.stderr(), '', 'a shutdown through the API is a clean end');
    assert.not.ok(fs.existsSync(socket), 'the socket file is removed');
    // The count goes on from where the pause stopped it: no line lost, repeated or out of order.
    const before = lineNumbers(child.stdout().slice(0, atPause).replace(/[^\n]*$/, '')).length;
    assert.ok(lineNumbers(child.stdout()).length > before + 2, 'lines after the resume');
  } finally {
    child.process.kill('SIGKILL');
  }
});

test('tsvmm remote: prints the JSON and exits 0; a refused request is one line and exit 1; no server is one line and exit 2; a paused VM is snapshotted and shut down', async () => {
  const socket = socketPath();
  const child = await chatty(socket);
  try {
    const info = remote(['--api-socket', socket, 'info']);
    assert.is(info.code, 0, info.stderr);
    assert.is(JSON.parse(info.stdout).state, 'running');
    const counters = remote(['--api-socket', socket, 'counters']);
    assert.is(counters.code, 0, counters.stderr);
    assert.ok(JSON.parse(counters.stdout).vcpus[0].kvmRuns > 0);
    const refused = remote(['--api-socket', socket, 'resume']);
    assert.is(refused.code, 1);
    assert.is(refused.stdout, '');
    assert.is(refused.stderr, 'tsvmm: the VM is running, not paused; pause it first with PUT /api/v1/vm.pause (HTTP 409)\n');
    const pause = remote(['--api-socket', socket, 'pause']);
    assert.is(pause.code, 0, pause.stderr);
    assert.equal(JSON.parse(pause.stdout), { state: 'paused' });
    const resume = remote(['--api-socket', socket, 'resume']);
    assert.is(resume.code, 0, resume.stderr);
    const snapshotRunning = remote(['--api-socket', socket, 'snapshot', path.join(dir, 'snap')]);
    assert.is(snapshotRunning.code, 1);
    assert.match(snapshotRunning.stderr, /^tsvmm: a snapshot needs a paused VM; .* \(HTTP 409\)\n$/);
    const usage = remote(['--api-socket', socket, 'reboot']);
    assert.is(usage.code, 2);
    assert.is(usage.stderr, 'tsvmm: remote: unknown command "reboot"; use one of info, counters, pause, resume, snapshot, shutdown\n');
    assert.is(remote(['--api-socket', socket, 'pause']).code, 0);
    // A relative DIR is resolved by remote, as the server only takes file:///ABSOLUTE/DIR.
    const snapshotDir = path.join(dir, 'snap');
    const snapshot = spawnSync(process.execPath, [MAIN, 'remote', '--api-socket', socket, 'snapshot', path.relative(dir, snapshotDir)], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.is(snapshot.status, 0, snapshot.stderr);
    assert.is(JSON.parse(snapshot.stdout).destination_url, `file://${snapshotDir}`);
    assert.ok(fs.existsSync(path.join(snapshotDir, 'manifest.json')), 'the snapshot is written');
    // A paused VM shuts down too: its vCPUs come back to see the stop.
    const shutdown = remote(['--api-socket', socket, 'shutdown']);
    assert.is(shutdown.code, 0, shutdown.stderr);
    assert.equal(await finish(child), { code: 0, signal: null, timedOut: false }, child.stderr());
    const gone = remote(['--api-socket', socket, 'info']);
    assert.is(gone.code, 2);
    assert.is(gone.stderr, `tsvmm: no API socket at ${socket}; start tsvmm with --api-socket ${socket} first\n`);
  } finally {
    child.process.kill('SIGKILL');
  }
});

test('a stale socket is replaced; a socket a live tsvmm owns is refused (exit 2, one line) and that tsvmm goes on; a regular file is refused', async () => {
  const socket = socketPath();
  const script = `require('node:net').createServer().listen(${JSON.stringify(socket)}, () => process.exit(0))`;
  assert.is(spawnSync(process.execPath, ['-e', script]).status, 0);
  assert.ok(fs.lstatSync(socket).isSocket(), 'a dead server left its socket');
  const first = await chatty(socket);
  try {
    assert.is((await apiRequest(socket, 'GET', 'vm.info')).status, 200, 'the stale socket was replaced by a live one');
    const second = start(['--kernel', guest('chatty'), '--api-socket', socket]);
    const refused = await finish(second);
    assert.is(refused.code, 2, second.stderr());
    assert.is(second.stderr(), `tsvmm: --api-socket ${socket}: a running server (another tsvmm?) listens on it; stop that one or give another path\n`);
    assert.is(second.stdout(), '', 'the refused tsvmm never ran its guest');
    assert.is((await apiRequest(socket, 'GET', 'vm.info')).status, 200, 'the first still answers');
    assert.is((await apiRequest(socket, 'PUT', 'vm.shutdown')).status, 200);
    assert.is((await finish(first)).code, 0);
  } finally {
    first.process.kill('SIGKILL');
  }
  const file = path.join(dir, 'notes.txt');
  fs.writeFileSync(file, 'keep');
  const onFile = start(['--kernel', guest('chatty'), '--api-socket', file]);
  assert.is((await finish(onFile)).code, 2);
  assert.is(onFile.stderr(), `tsvmm: --api-socket ${file}: exists and is not a socket; remove it or give another path\n`);
  assert.is(fs.readFileSync(file, 'utf8'), 'keep');
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} stops the VM and removes the socket file`, async () => {
    const socket = socketPath();
    const child = await chatty(socket);
    child.process.kill(signal);
    const ended = await finish(child);
    assert.is(ended.code, signal === 'SIGINT' ? 130 : 143, child.stderr());
    assert.not.ok(fs.existsSync(socket));
  });
}

test('a guest fault ends the VM with its own exit code and the socket file is removed', async () => {
  const socket = socketPath();
  const child = start(['--kernel', guest('fault'), '--api-socket', socket]);
  const ended = await finish(child);
  assert.is(ended.code, 3, child.stderr());
  assert.match(child.stderr(), 'triple fault');
  assert.not.ok(fs.existsSync(socket));
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test.run();

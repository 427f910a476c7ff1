// The control API's server and client on real unix sockets in a temporary
// directory, with a fake target (no KVM): the socket file's mode and life,
// stale and live sockets, HTTP-level refusals, and requests that are not HTTP.

import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { apiRequest } from '../../../../src/main/api/client';
import type { ControlTarget } from '../../../../src/main/api/routes';
import { ApiServer } from '../../../../src/main/api/server';
import type { MachineState } from '../../../../src/main/vmm/machine';
import { DEFAULT_VM_CONFIG } from '../../../../src/main/vmm/vm-config';
import type { VmExit } from '../../../../src/main/vmm/vm-exit';
import { TsvmmError } from '../../../../src/shared/errors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvmm-api-'));
let counter = 0;
const socketPath = () => path.join(dir, `api${counter++}.sock`);

function fakeTarget(): ControlTarget & { ended?: VmExit } {
  const target = {
    config: DEFAULT_VM_CONFIG,
    state: 'running' as MachineState,
    ended: undefined as VmExit | undefined,
    devices: { devices: () => [] },
    deviceStats: { served: 0, parks: 0 },
    stats: () => [],
    deviceCounters: () => ({}),
    pause: async () => { target.state = 'paused'; },
    resume: () => { target.state = 'running'; },
    end: (exit: VmExit) => { target.ended = exit; target.state = 'stopping'; },
    snapshot: async () => ({}),
  };
  return target;
}

/** The raw answer to an HTTP request, headers included. */
function raw(socket: string, method: string, route: string, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const request = http.request({ socketPath: socket, method, path: route }, (response) => {
      let text = '';
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, text }));
    });
    request.on('error', reject);
    request.end(body);
  });
}

/** Bytes written straight to the socket, and everything the server sent back before it closed. */
function exchange(socket: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const connection = net.connect(socket, () => connection.write(bytes));
    let text = '';
    connection.on('data', (chunk) => { text += chunk; });
    connection.on('end', () => resolve(text));
    connection.on('error', reject);
  });
}

/** A socket file that nobody listens on: a process that listened on it and died without closing. */
function staleSocket(file: string): void {
  const script = `require('node:net').createServer().listen(${JSON.stringify(file)}, () => process.exit(0))`;
  const result = spawnSync(process.execPath, ['-e', script]);
  assert.is(result.status, 0, String(result.stderr));
  assert.ok(fs.lstatSync(file).isSocket(), 'the dead process left its socket file');
}

async function refusal(promise: Promise<unknown>): Promise<TsvmmError> {
  try {
    await promise;
  } catch (error) {
    assert.instance(error, TsvmmError);
    return error as TsvmmError;
  }
  throw new Error('expected a refusal');
}

test('the socket file is the owner\'s alone (0600) while the server runs, and gone after close', async () => {
  const file = socketPath();
  const server = await ApiServer.open(file, fakeTarget());
  try {
    const stat = fs.lstatSync(file);
    assert.ok(stat.isSocket());
    assert.is(stat.mode & 0o777, 0o600);
    const reply = await apiRequest(file, 'GET', 'vm.info');
    assert.is(reply.status, 200);
    assert.is((reply.body as { state: string }).state, 'running');
  } finally {
    await server.close();
  }
  assert.not.ok(fs.existsSync(file));
  await server.close(); // twice is fine
});

test('the process umask is what it was before open', async () => {
  const before = process.umask();
  const server = await ApiServer.open(socketPath(), fakeTarget());
  await server.close();
  assert.is(process.umask(), before);
});

test('HTTP refusals: 404 and 405 with Allow, bad JSON 400, an oversized body 413; all JSON, and the server goes on', async () => {
  const file = socketPath();
  const target = fakeTarget();
  const server = await ApiServer.open(file, target);
  try {
    const missing = await raw(file, 'GET', '/api/v1/vm.boot');
    assert.is(missing.status, 404);
    assert.is(missing.headers['content-type'], 'application/json');
    assert.match(JSON.parse(missing.text).error, 'no route /api/v1/vm.boot');
    const wrong = await raw(file, 'DELETE', '/api/v1/vm.pause');
    assert.is(wrong.status, 405);
    assert.is(wrong.headers.allow, 'PUT');
    const bad = await raw(file, 'PUT', '/api/v1/vm.pause', '{"x":');
    assert.is(bad.status, 400);
    assert.match(JSON.parse(bad.text).error, 'not valid JSON');
    const huge = await raw(file, 'PUT', '/api/v1/vm.pause', `{"pad":"${'x'.repeat(100_000)}"}`);
    assert.is(huge.status, 413);
    assert.match(JSON.parse(huge.text).error, 'at most 65536');
    assert.is(target.state, 'running', 'no refused request reached the target');
    assert.equal(await apiRequest(file, 'PUT', 'vm.pause'), { status: 200, body: { state: 'paused' } });
  } finally {
    await server.close();
  }
});

test('bytes that are not HTTP get a 400 and a closed connection; the next request is served', async () => {
  const file = socketPath();
  const server = await ApiServer.open(file, fakeTarget());
  try {
    const answer = await exchange(file, 'hello\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(answer, /"error":"bad HTTP request: /);
    assert.is((await apiRequest(file, 'GET', 'vm.counters')).status, 200);
  } finally {
    await server.close();
  }
});

test('vm.shutdown: the client has its answer, then the target is ended', async () => {
  const file = socketPath();
  const target = fakeTarget();
  const server = await ApiServer.open(file, target);
  try {
    const reply = await apiRequest(file, 'PUT', 'vm.shutdown');
    assert.equal(reply, { status: 200, body: { state: 'stopping' } });
    for (let i = 0; i < 100 && !target.ended; i++) await new Promise((resolve) => setImmediate(resolve));
    assert.equal(target.ended, { kind: 'stopped', cause: { by: 'api' } });
  } finally {
    await server.close();
  }
});

test('a stale socket (nobody listens) is replaced', async () => {
  const file = socketPath();
  staleSocket(file);
  const server = await ApiServer.open(file, fakeTarget());
  try {
    // The stale file refused connections; this one answers.
    assert.is((await apiRequest(file, 'GET', 'vm.info')).status, 200);
  } finally {
    await server.close();
  }
});

test('a socket a live server owns is refused with one line, and that server keeps it', async () => {
  const file = socketPath();
  const other = net.createServer((connection) => connection.end());
  await new Promise<void>((resolve) => other.listen(file, resolve));
  try {
    const error = await refusal(ApiServer.open(file, fakeTarget()));
    assert.is(error.kind, 'usage');
    assert.is(error.message, `--api-socket ${file}: a running server (another tsvmm?) listens on it; stop that one or give another path`);
    assert.ok(fs.lstatSync(file).isSocket(), 'still there');
    const connected = await new Promise<boolean>((resolve) => {
      const connection = net.connect(file, () => { connection.destroy(); resolve(true); });
      connection.once('error', () => resolve(false));
    });
    assert.ok(connected, 'the other server still answers on it');
  } finally {
    await new Promise((resolve) => other.close(resolve));
  }
});

test('a regular file, a directory or a missing directory at the path is refused and left alone', async () => {
  const file = path.join(dir, 'notes.txt');
  fs.writeFileSync(file, 'keep me');
  const regular = await refusal(ApiServer.open(file, fakeTarget()));
  assert.is(regular.message, `--api-socket ${file}: exists and is not a socket; remove it or give another path`);
  assert.is(fs.readFileSync(file, 'utf8'), 'keep me');
  assert.match((await refusal(ApiServer.open(dir, fakeTarget()))).message, 'exists and is not a socket');
  const nowhere = path.join(dir, 'no-such-dir', 'api.sock');
  const missing = await refusal(ApiServer.open(nowhere, fakeTarget()));
  assert.is(missing.kind, 'usage');
  assert.is(missing.message, `--api-socket ${nowhere}: the directory ${path.dirname(nowhere)} does not exist; create it or give another path`);
});

test('a path longer than a unix socket address holds is refused instead of cut short', async () => {
  const long = path.join(dir, 'x'.repeat(120));
  const error = await refusal(ApiServer.open(long, fakeTarget()));
  assert.is(error.kind, 'usage');
  assert.match(error.message, /is \d+ bytes long; a unix socket path is at most 107, so give a shorter one$/);
  assert.equal(fs.readdirSync(dir).filter((name) => name.startsWith('x')), [], 'no truncated socket made');
});

test('the client: no socket, a stale socket and a non-socket are one usage line each', async () => {
  const missing = await refusal(apiRequest(path.join(dir, 'nothing.sock'), 'GET', 'vm.info'));
  assert.is(missing.kind, 'usage');
  assert.match(missing.message, /^no API socket at .*nothing\.sock; start tsvmm with --api-socket /);
  const stale = socketPath();
  staleSocket(stale);
  assert.match((await refusal(apiRequest(stale, 'GET', 'vm.info'))).message, 'nothing listens on');
  const file = path.join(dir, 'plain');
  fs.writeFileSync(file, '');
  const plain = await refusal(apiRequest(file, 'GET', 'vm.info'));
  assert.is(plain.kind, 'usage');
  assert.match(plain.message, /not a socket|nothing listens/);
});

test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test.run();

// The control API's routes against a fake ControlTarget: every route, its
// body checks, and the status for each wrong state, with no HTTP and no KVM.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ApiResponse, ControlTarget, handleApiRequest } from '../../../../src/main/api/routes';
import type { MachineState } from '../../../../src/main/vmm/machine';
import { DEFAULT_VM_CONFIG } from '../../../../src/main/vmm/vm-config';
import type { VmExit } from '../../../../src/main/vmm/vm-exit';
import { TsvmmError } from '../../../../src/shared/errors';
import type { VcpuStatValues } from '../../../../src/shared/vcpu-stats';

const stats = (kvmRuns: number): VcpuStatValues => ({
  kvmRuns, ioExits: 2, mmioExits: 3, forwarded: 4, unclaimed: 1, spinHits: 5, parks: 0, interrupted: 0, otherExits: 0, firstRunNs: 7,
});

class FakeTarget implements ControlTarget {
  readonly config = { ...DEFAULT_VM_CONFIG, cpus: 2 };
  state: MachineState = 'running';
  readonly calls: string[] = [];
  ended?: VmExit;
  snapshotFails?: Error;
  readonly devices = {
    devices: () => [
      { id: 'com1', bus: 'io' as const, base: 0x3f8, length: 8, model: {}, irq: 4 },
      { id: 'disk0', bus: 'mmio' as const, base: 0, length: 0, model: {}, irq: 10 },
      { id: 'cmos', bus: 'io' as const, base: 0x70, length: 2, model: {} },
    ],
  };
  readonly deviceStats = { served: 11, parks: 2 };
  stats(): VcpuStatValues[] { return [stats(100), stats(50)]; }
  deviceCounters() { return { disk0: { requests: 3, notifications: 4 } }; }
  async pause() { this.calls.push('pause'); this.state = 'paused'; }
  resume() { this.calls.push('resume'); this.state = 'running'; }
  async snapshot(directory: string) {
    this.calls.push(`snapshot ${directory}`);
    if (this.snapshotFails) throw this.snapshotFails;
    return { bytes: 4096 };
  }
  end(exit: VmExit) { this.calls.push('end'); this.ended = exit; this.state = 'stopping'; }
}

const ask = (target: ControlTarget, method: string, route: string, body = '') => handleApiRequest(target, { method, path: `/api/v1/${route}`, body });
const errorOf = (answer: ApiResponse) => (answer.body as { error: string }).error;

test('vm.info: the config, the state, the vCPUs and the board devices', async () => {
  const answer = await ask(new FakeTarget(), 'GET', 'vm.info');
  assert.is(answer.status, 200);
  assert.equal(answer.body, {
    config: { ...DEFAULT_VM_CONFIG, cpus: 2 },
    state: 'running',
    vcpus: [{ id: 0 }, { id: 1 }],
    devices: [
      { id: 'com1', bus: 'io', base: 0x3f8, length: 8, irq: 4 },
      { id: 'disk0', bus: 'mmio', base: 0, length: 0, irq: 10 },
      { id: 'cmos', bus: 'io', base: 0x70, length: 2 },
    ],
  });
});

test('vm.counters: per-vCPU counters, the device thread and each device', async () => {
  const answer = await ask(new FakeTarget(), 'GET', 'vm.counters?verbose=1');
  assert.is(answer.status, 200);
  assert.equal(answer.body, {
    vcpus: [{ id: 0, ...stats(100) }, { id: 1, ...stats(50) }],
    deviceThread: { served: 11, parks: 2 },
    devices: { disk0: { requests: 3, notifications: 4 } },
  });
});

test('pause, resume: 200 with the new state; the second of each is a 409 that says what to do', async () => {
  const target = new FakeTarget();
  assert.equal(await ask(target, 'PUT', 'vm.pause'), { status: 200, body: { state: 'paused' } });
  const again = await ask(target, 'PUT', 'vm.pause', '{}');
  assert.is(again.status, 409);
  assert.match(errorOf(again), 'already paused; resume it with PUT /api/v1/vm.resume');
  assert.equal(await ask(target, 'PUT', 'vm.resume'), { status: 200, body: { state: 'running' } });
  const twice = await ask(target, 'PUT', 'vm.resume');
  assert.is(twice.status, 409);
  assert.match(errorOf(twice), 'running, not paused; pause it first');
  assert.equal(target.calls, ['pause', 'resume']);
});

test('a pause under way is joined; a resume during it is a 409', async () => {
  const target = new FakeTarget();
  target.state = 'pausing';
  assert.is((await ask(target, 'PUT', 'vm.resume')).status, 409);
  assert.is((await ask(target, 'PUT', 'vm.pause')).status, 200);
  assert.equal(target.calls, ['pause']);
});

test('vm.snapshot: a paused VM, a file:// URL; the target gets the directory', async () => {
  const target = new FakeTarget();
  target.state = 'paused';
  const answer = await ask(target, 'PUT', 'vm.snapshot', '{"destination_url":"file:///var/tmp/snap%201"}');
  assert.equal(answer, { status: 200, body: { destination_url: 'file:///var/tmp/snap%201', bytes: 4096 } });
  assert.equal(target.calls, ['snapshot /var/tmp/snap 1']);
});

test('vm.snapshot of a running VM is a 409 and nothing is written', async () => {
  const target = new FakeTarget();
  const answer = await ask(target, 'PUT', 'vm.snapshot', '{"destination_url":"file:///tmp/s"}');
  assert.is(answer.status, 409);
  assert.match(errorOf(answer), 'needs a paused VM; pause it first');
  assert.equal(target.calls, []);
});

test('vm.snapshot bodies: missing, wrong type, not a URL, not file://, a host, extra fields are 400s naming the problem', async () => {
  const target = new FakeTarget();
  target.state = 'paused';
  const cases: Array<[string, string]> = [
    ['', 'needs "destination_url"'],
    ['{}', 'needs "destination_url"'],
    ['{"destination_url":7}', 'must be a string'],
    ['{"destination_url":"/tmp/s"}', 'is not a URL'],
    ['{"destination_url":"http://host/s"}', 'must be a file:// URL'],
    ['{"destination_url":"file://host/s"}', 'no host, query or fragment'],
    ['{"destination_url":"file:///tmp/s?x=1"}', 'no host, query or fragment'],
    ['{"destination_url":"file:///tmp/s","compress":true}', 'takes only "destination_url", got "compress"'],
  ];
  for (const [body, message] of cases) {
    const answer = await ask(target, 'PUT', 'vm.snapshot', body);
    assert.is(answer.status, 400, body);
    assert.match(errorOf(answer), message, body);
  }
  assert.equal(target.calls, []);
});

test('a snapshot the machine refuses as the caller\'s mistake is a 400; any other failure a 500 with its cause', async () => {
  const target = new FakeTarget();
  target.state = 'paused';
  target.snapshotFails = new TsvmmError('usage', '/tmp/s is not empty; give a new directory');
  const refused = await ask(target, 'PUT', 'vm.snapshot', '{"destination_url":"file:///tmp/s"}');
  assert.equal(refused, { status: 400, body: { error: 'vm.snapshot failed: /tmp/s is not empty; give a new directory' } });
  target.snapshotFails = new TsvmmError('host', 'cannot write memory.bin', { cause: new Error('ENOSPC: no space left on device') });
  const failed = await ask(target, 'PUT', 'vm.snapshot', '{"destination_url":"file:///tmp/s"}');
  assert.equal(failed, { status: 500, body: { error: 'vm.snapshot failed: cannot write memory.bin: ENOSPC: no space left on device' } });
  assert.is(target.state, 'paused', 'a failed snapshot leaves the VM as it was');
});

test('while a snapshot is being written, resume, shutdown and another snapshot are 409s; afterwards they work', async () => {
  const target = new FakeTarget();
  target.state = 'paused';
  let finish!: () => void;
  target.snapshot = (directory: string) => {
    target.calls.push(`snapshot ${directory}`);
    return new Promise<{ bytes: number }>((resolve) => { finish = () => resolve({ bytes: 1 }); });
  };
  const first = ask(target, 'PUT', 'vm.snapshot', '{"destination_url":"file:///tmp/a"}');
  await new Promise((resolve) => setImmediate(resolve));
  for (const [route, body] of [['vm.resume', ''], ['vm.shutdown', ''], ['vm.snapshot', '{"destination_url":"file:///tmp/b"}']]) {
    const answer = await ask(target, 'PUT', route, body);
    assert.is(answer.status, 409, route);
    assert.match(errorOf(answer), 'a snapshot is being written', route);
  }
  assert.is((await ask(target, 'GET', 'vm.info')).status, 200, 'reading is fine meanwhile');
  finish();
  assert.is((await first).status, 200);
  assert.equal(target.calls, ['snapshot /tmp/a']);
  assert.is((await ask(target, 'PUT', 'vm.resume')).status, 200);
});

test('vm.shutdown answers first, then ends the VM as stopped through the API; a second one is a 409', async () => {
  const target = new FakeTarget();
  const answer = await ask(target, 'PUT', 'vm.shutdown');
  assert.is(answer.status, 200);
  assert.equal(answer.body, { state: 'stopping' });
  assert.is(target.ended, undefined, 'not before the answer is out');
  answer.afterResponse!();
  assert.equal(target.ended, { kind: 'stopped', cause: { by: 'api' } });
  const again = await ask(target, 'PUT', 'vm.shutdown');
  assert.is(again.status, 409);
  assert.match(errorOf(again), 'the VM is stopping');
});

test('a paused VM can be shut down; a VM that has not started cannot be paused or shut down', async () => {
  const paused = new FakeTarget();
  paused.state = 'paused';
  assert.is((await ask(paused, 'PUT', 'vm.shutdown')).status, 200);
  const built = new FakeTarget();
  built.state = 'built';
  for (const route of ['vm.pause', 'vm.resume', 'vm.shutdown']) {
    const answer = await ask(built, 'PUT', route);
    assert.is(answer.status, 409, route);
    assert.match(errorOf(answer), 'has not started yet', route);
  }
  const stopped = new FakeTarget();
  stopped.state = 'stopped';
  assert.match(errorOf(await ask(stopped, 'PUT', 'vm.pause')), 'the VM is stopped');
  assert.equal(built.calls, []);
});

test('an unknown route is a 404 listing the routes; a wrong method a 405 with Allow', async () => {
  const target = new FakeTarget();
  for (const path of ['/api/v1/vm.boot', '/', '/api/v2/vm.info', '/api/v1/constructor', '/api/v1/__proto__']) {
    const answer = await handleApiRequest(target, { method: 'GET', path, body: '' });
    assert.is(answer.status, 404, path);
    assert.match(errorOf(answer), `no route ${path}; the API has /api/v1/vm.info, /api/v1/vm.counters`, path);
  }
  const wrong = await ask(target, 'GET', 'vm.pause');
  assert.equal(wrong, { status: 405, allow: 'PUT', body: { error: '/api/v1/vm.pause takes PUT, not GET' } });
  assert.equal((await ask(target, 'POST', 'vm.info')).allow, 'GET');
  assert.equal(target.calls, []);
});

test('bad PUT bodies are 400s and change nothing: not JSON, not an object, fields a route does not take', async () => {
  const target = new FakeTarget();
  const cases: Array<[string, string, string]> = [
    ['vm.pause', '{"now":', 'not valid JSON'],
    ['vm.pause', '[]', 'must be a JSON object'],
    ['vm.pause', 'null', 'must be a JSON object'],
    ['vm.resume', '"x"', 'must be a JSON object'],
    ['vm.pause', '{"force":true}', 'vm.pause takes no fields, got "force"'],
    ['vm.shutdown', '{"when":"now"}', 'vm.shutdown takes no fields, got "when"'],
  ];
  for (const [route, body, message] of cases) {
    const answer = await ask(target, 'PUT', route, body);
    assert.is(answer.status, 400, body);
    assert.match(errorOf(answer), message, body);
  }
  assert.equal(target.calls, []);
  assert.is(target.state, 'running');
});

test('a target that throws something unexpected is a 500 with the message, not a rejection', async () => {
  const target = new FakeTarget();
  target.pause = async () => { throw new Error('worker 0 is gone'); };
  assert.equal(await ask(target, 'PUT', 'vm.pause'), { status: 500, body: { error: 'vm.pause failed: worker 0 is gone' } });
});

test.run();

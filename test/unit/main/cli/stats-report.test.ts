// --stats: the text lines as before, and --stats=json's one object with the
// exit reason and durations computed from the clock readings, never the readings.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RunRecord, statsJson, statsText } from '../../../../src/main/cli/stats-report';
import { HANDOFF_BUCKETS, VcpuStatValues } from '../../../../src/shared/vcpu-stats';

const counters = (firstRunNs: number): VcpuStatValues => ({
  kvmRuns: 10, ioExits: 7, mmioExits: 1, forwarded: 5, unclaimed: 3, spinHits: 4, parks: 1, interrupted: 2, otherExits: 2, firstRunNs,
});

const PROCESS_START = 5_000_000_000_000;
const record = (firstRunNs: number): RunRecord => ({
  exit: { kind: 'reset', source: 'i8042' },
  exitCode: 0,
  summary: 'guest reset (i8042)',
  vcpus: [counters(firstRunNs), counters(0)],
  deviceThread: { served: 5, parks: 2 },
  processStartNs: PROCESS_START,
  endedNs: PROCESS_START + 250_500_000,
  nowNs: PROCESS_START + 260_000_000,
});

test('text: one line per vCPU, the device thread, and the start-up time', () => {
  const text = statsText(record(PROCESS_START + 42_345_678));
  assert.is(text, [
    `vcpu0: kvmRuns=10 ioExits=7 mmioExits=1 forwarded=5 unclaimed=3 spinHits=4 parks=1 interrupted=2 otherExits=2 firstRunNs=${PROCESS_START + 42_345_678}`,
    'vcpu1: kvmRuns=10 ioExits=7 mmioExits=1 forwarded=5 unclaimed=3 spinHits=4 parks=1 interrupted=2 otherExits=2 firstRunNs=0',
    'device thread: served=5 parks=2',
    'start-up: first guest instruction 42.3 ms after process start',
    '',
  ].join('\n'));
});

test('json: one line, one object: the typed exit, its code and summary, durations in ms, counters without clock readings', () => {
  const text = statsJson(record(PROCESS_START + 42_345_678));
  assert.ok(text.endsWith('\n'));
  assert.is(text.trimEnd().split('\n').length, 1);
  const stats = JSON.parse(text);
  assert.equal(stats.exit, { kind: 'reset', source: 'i8042' });
  assert.is(stats.exitCode, 0);
  assert.is(stats.summary, 'guest reset (i8042)');
  assert.equal(stats.durationsMs, { startup: 42.346, guest: 208.154, total: 260 });
  assert.equal(stats.vcpus[0], { id: 0, kvmRuns: 10, ioExits: 7, mmioExits: 1, forwarded: 5, unclaimed: 3, spinHits: 4, parks: 1, interrupted: 2, otherExits: 2 });
  assert.is(stats.vcpus[1].id, 1);
  assert.equal(stats.deviceThread, { served: 5, parks: 2 });
  assert.not.match(text, /firstRunNs|\d{13}/, 'no raw clock reading');
});

test('json: a guest that never ran has no start-up or guest time (null), still a total', () => {
  const stats = JSON.parse(statsJson(record(0)));
  assert.equal(stats.durationsMs, { startup: null, guest: null, total: 260 });
  assert.not.match(statsText(record(0)), /start-up/);
});

test('the hand-off wait histogram: one more line per vCPU in text, bounds and counts in json', () => {
  const spin = Array(HANDOFF_BUCKETS).fill(0);
  const park = Array(HANDOFF_BUCKETS).fill(0);
  spin[0] = 30;
  park[6] = 2;
  const withWaits = { ...record(PROCESS_START + 42_345_678), handOffWaits: [{ spin, park }, { spin: park, park: spin }] };
  const lines = statsText(withWaits).split('\n');
  assert.is(lines[1], 'vcpu0 hand-off wait (us, 1 in 16 timed): spun <1:30; parked 32-64:2');
  assert.is(lines[3], 'vcpu1 hand-off wait (us, 1 in 16 timed): spun 32-64:2; parked <1:30');
  const json = JSON.parse(statsJson(withWaits)).vcpus[0].handOffWaits;
  assert.is(json.sampledOneIn, 16);
  assert.equal(json.bucketsBelowUs.slice(0, 4), [1, 2, 4, 8]);
  assert.is(json.bucketsBelowUs.at(-1), null);
  assert.equal([json.spun[0], json.parked[6]], [30, 2]);
});

test('json: a guest fault keeps where it happened', () => {
  const where = { rip: '0x101a54', mode: 'long mode' as const, csBase: '0x0', instructionBytes: [0x0f, 0x0b], registers: 'rax=0x0' };
  const stats = JSON.parse(statsJson({ ...record(PROCESS_START + 1), exit: { kind: 'triple-fault', vcpu: 0, where }, exitCode: 3, summary: 'vCPU 0: triple fault' }));
  assert.equal(stats.exit, { kind: 'triple-fault', vcpu: 0, where });
  assert.is(stats.exitCode, 3);
});

test.run();

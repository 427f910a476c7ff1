import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  HANDOFF_BUCKETS, VCPU_STATS_BYTES, handOffHistogramText, readHandOffHistogram, readVcpuStats, recordHandOffWait, timesHandOffWait,
} from '../../../src/shared/vcpu-stats';

function statsBuffer(): { buffer: SharedArrayBuffer; view: Float64Array } {
  const buffer = new SharedArrayBuffer(VCPU_STATS_BYTES);
  return { buffer, view: new Float64Array(buffer) };
}

test('a hand-off wait lands in its log2 microsecond bucket, spun and parked apart', () => {
  const { buffer, view } = statsBuffer();
  recordHandOffWait(view, false, 0); // under 1 us
  recordHandOffWait(view, false, 0.6);
  recordHandOffWait(view, false, 1); // 1-2 us
  recordHandOffWait(view, false, 3.9); // 2-4 us
  recordHandOffWait(view, true, 40); // 32-64 us
  recordHandOffWait(view, true, 1e9); // far past the last bucket's start
  const h = readHandOffHistogram(buffer);
  assert.is(h.spin.length, HANDOFF_BUCKETS);
  assert.equal(h.spin.slice(0, 4), [2, 1, 1, 0]);
  assert.is(h.park[6], 1);
  assert.is(h.park[HANDOFF_BUCKETS - 1], 1);
  assert.is(h.park.reduce((a, b) => a + b, 0), 2);
});

test('the histogram does not overlap the named counters', () => {
  const { buffer, view } = statsBuffer();
  for (let us = 0; us < 70000; us += 7) recordHandOffWait(view, us % 2 === 0, us);
  for (const [name, value] of Object.entries(readVcpuStats(buffer))) assert.is(value, 0, name);
});

test('the --stats line lists the non-empty buckets of each row', () => {
  const { buffer, view } = statsBuffer();
  assert.match(handOffHistogramText(readHandOffHistogram(buffer)), /spun none; parked none$/);
  recordHandOffWait(view, false, 0.2);
  recordHandOffWait(view, false, 0.3);
  recordHandOffWait(view, true, 20);
  recordHandOffWait(view, true, 1e6);
  assert.match(handOffHistogramText(readHandOffHistogram(buffer)), /spun <1:2; parked 16-32:1 >=16384:1$/);
});

test('one hand-off in 16 is timed', () => {
  const timed = Array.from({ length: 64 }, (_, forwarded) => forwarded).filter(timesHandOffWait);
  assert.equal(timed, [0, 16, 32, 48]);
});

test.run();

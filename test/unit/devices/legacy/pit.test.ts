import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Pit, PitError, PitSpeakerPort, PIT_PORT_COUNT, PIT_FREQUENCY_HZ } from '../../../../src/devices/legacy/pit';
import type { PitChannelState, PitSpeakerPortState, PitState } from '../../../../src/devices/legacy/pit';
import { PIT_PORT as PIT_BASE_PORT, PIT_SPEAKER_PORT } from '../../../../src/main/layout';

// Expected times are ceil(ticks * 1e9 / 1193182) ns, the first nanosecond at
// which that many 1.193182 MHz clocks have passed, computed by hand:
//   1 tick -> 839 ns, 9 -> 7543, 10 -> 8381, 11 -> 9220, 100 -> 83810, 200 -> 167620,
//   1193 -> 999848, 2386 -> 1999695, 3579 -> 2999543, 4096 -> 3432838,
//   11931 -> 9999313, 32768 -> 27462701, 65536 -> 54925402,
//   3 * 65536 -> 164776204, 4 * 65536 -> 219701605, 5 * 65536 -> 274627006.

const CHANNEL0 = 0, CHANNEL2 = 2, CONTROL = 3;

/** A fake monotonic clock and a scheduler that runs callbacks as time is advanced by hand. */
class FakeTime {
  ns = 0n;
  timers: Array<{ due: bigint; callback: () => void; cancelled: boolean }> = [];
  cancelled = 0;
  now = () => this.ns;
  schedule = (delayNs: bigint, callback: () => void) => {
    const timer = { due: this.ns + delayNs, callback, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; this.cancelled++; } };
  };
  pending() {
    return this.timers.filter((t) => !t.cancelled);
  }
  /** Runs each callback at exactly its due time, in order, up to `ns`. */
  advanceTo(ns: number | bigint) {
    const target = BigInt(ns);
    for (;;) {
      const next = this.pending().filter((t) => t.due <= target).sort((a, b) => (a.due < b.due ? -1 : 1))[0];
      if (!next) break;
      this.timers.splice(this.timers.indexOf(next), 1);
      this.ns = next.due;
      next.callback();
    }
    this.ns = target;
  }
  /** Moves the clock first and only then runs the timers that fell due (a host late to run them). */
  jumpLateTo(ns: number | bigint) {
    this.ns = BigInt(ns);
    const due = this.pending().filter((t) => t.due <= this.ns);
    for (const timer of due) {
      this.timers.splice(this.timers.indexOf(timer), 1);
      timer.callback();
    }
  }
}

function makePit() {
  const time = new FakeTime();
  const irq = { count: 0, trigger() { this.count++; } };
  const pit = new Pit({ now: time.now, schedule: time.schedule, interrupt: irq });
  return { pit, time, irq };
}

test('placement and clock', () => {
  assert.is(PIT_BASE_PORT, 0x40);
  assert.is(PIT_PORT_COUNT, 4);
  assert.is(PIT_SPEAKER_PORT, 0x61);
  assert.is(PIT_FREQUENCY_HZ, 1_193_182n);
});

test('nothing runs before the guest programs a count', () => {
  const { time, irq } = makePit();
  assert.is(time.timers.length, 0);
  time.advanceTo(1_000_000_000);
  assert.is(irq.count, 0);
});

test('mode 2 (rate generator) on channel 0: IRQ 0 every 1193 ticks (Linux HZ=1000)', () => {
  const { pit, time, irq } = makePit();
  pit.writeRegister(CONTROL, 0x34); // channel 0, LSB then MSB, mode 2, binary
  pit.writeRegister(CHANNEL0, 0xa9); // 1193 = 0x04a9
  pit.writeRegister(CHANNEL0, 0x04);
  time.advanceTo(999_847);
  assert.is(irq.count, 0);
  time.advanceTo(999_848);
  assert.is(irq.count, 1);
  time.advanceTo(1_999_694);
  assert.is(irq.count, 1);
  time.advanceTo(1_999_695);
  assert.is(irq.count, 2);
  time.advanceTo(2_999_543);
  assert.is(irq.count, 3);
});

test('mode 2: live count reads LSB then MSB', () => {
  const { pit, time } = makePit();
  pit.writeRegister(CONTROL, 0x34);
  pit.writeRegister(CHANNEL0, 0xa9);
  pit.writeRegister(CHANNEL0, 0x04);
  time.advanceTo(83_810); // 100 ticks: 1193 - 100 = 1093 = 0x0445
  assert.is(pit.readRegister(CHANNEL0), 0x45);
  assert.is(pit.readRegister(CHANNEL0), 0x04);
  time.advanceTo(999_848 + 83_810); // one period later: 2386 - ... still 1093 within the second period (± a tick of rounding)
  const low = pit.readRegister(CHANNEL0);
  const high = pit.readRegister(CHANNEL0);
  // 1083658 ns is floor(1083658 * 1193182 / 1e9) = 1293 ticks: 1193 - (1293 - 1193) = 1093
  assert.is((high << 8) | low, 1093);
});

test('counter latch command freezes the count until both bytes are read', () => {
  const { pit, time } = makePit();
  pit.writeRegister(CONTROL, 0x34);
  pit.writeRegister(CHANNEL0, 0xa9);
  pit.writeRegister(CHANNEL0, 0x04);
  time.advanceTo(83_810);
  pit.writeRegister(CONTROL, 0x00); // latch channel 0
  time.advanceTo(167_620); // 200 ticks: live count is now 993 = 0x03e1
  pit.writeRegister(CONTROL, 0x00); // a second latch before reading is ignored
  assert.is(pit.readRegister(CHANNEL0), 0x45);
  assert.is(pit.readRegister(CHANNEL0), 0x04);
  assert.is(pit.readRegister(CHANNEL0), 0xe1); // live again
  assert.is(pit.readRegister(CHANNEL0), 0x03);
});

test('mode 0 (interrupt on terminal count): one IRQ, OUT goes high and stays, the count wraps', () => {
  const { pit, time, irq } = makePit();
  pit.writeRegister(CONTROL, 0x30); // channel 0, LSB then MSB, mode 0
  pit.writeRegister(CONTROL, 0xe2); // read-back: status of channel 0
  assert.is(pit.readRegister(CHANNEL0), 0x70); // OUT low, null count, RW=11, mode 0
  pit.writeRegister(CHANNEL0, 0x00); // 0x1000 = 4096
  pit.writeRegister(CHANNEL0, 0x10);
  pit.writeRegister(CONTROL, 0xe2);
  assert.is(pit.readRegister(CHANNEL0), 0x30); // count loaded: null count clear, OUT still low
  time.advanceTo(3_432_837);
  assert.is(irq.count, 0);
  assert.is(pit.output(CHANNEL0), false);
  time.advanceTo(3_432_838);
  assert.is(irq.count, 1);
  assert.is(pit.output(CHANNEL0), true);
  pit.writeRegister(CONTROL, 0xe2);
  assert.is(pit.readRegister(CHANNEL0), 0xb0);
  time.advanceTo(3_432_838 + 8_381); // 10 ticks more (4106): (4096 - 4106) mod 65536 = 0xfff6
  assert.is(pit.readRegister(CHANNEL0), 0xf6);
  assert.is(pit.readRegister(CHANNEL0), 0xff);
  time.advanceTo(1_000_000_000);
  assert.is(irq.count, 1);
  assert.is(time.pending().length, 0);
});

test('mode 3 (square wave) with count 0 = 65536: 18.2 Hz, OUT high for the first half', () => {
  const { pit, time, irq } = makePit();
  pit.writeRegister(CONTROL, 0x36); // channel 0, LSB then MSB, mode 3
  pit.writeRegister(CHANNEL0, 0);
  pit.writeRegister(CHANNEL0, 0);
  assert.is(pit.output(CHANNEL0), true);
  time.advanceTo(27_462_700);
  assert.is(pit.output(CHANNEL0), true); // 32767 ticks
  time.advanceTo(27_462_701);
  assert.is(pit.output(CHANNEL0), false); // 32768 ticks: second half
  time.advanceTo(54_925_401);
  assert.is(irq.count, 0);
  time.advanceTo(54_925_402);
  assert.is(irq.count, 1);
  assert.is(pit.output(CHANNEL0), true);
  time.advanceTo(54_925_402 + 838_096); // about 1000 ticks into the second period
  // floor(55763498 * 1193182 / 1e9) = 66536 ticks: 1000 into the period, count 65536 - 2000 = 63536 = 0xf830
  assert.is(pit.readRegister(CHANNEL0), 0x30);
  assert.is(pit.readRegister(CHANNEL0), 0xf8);
});

test('mode 4 (software strobe): OUT low for the one clock at terminal count, IRQ on its rising edge', () => {
  const { pit, time, irq } = makePit();
  pit.writeRegister(CONTROL, 0x38); // channel 0, LSB then MSB, mode 4
  pit.writeRegister(CHANNEL0, 10);
  pit.writeRegister(CHANNEL0, 0);
  assert.is(pit.output(CHANNEL0), true);
  time.advanceTo(8_380); // 9 ticks
  assert.is(pit.output(CHANNEL0), true);
  time.advanceTo(8_381); // 10 ticks: terminal count
  assert.is(pit.output(CHANNEL0), false);
  assert.is(irq.count, 0);
  time.advanceTo(9_220); // 11 ticks
  assert.is(pit.output(CHANNEL0), true);
  assert.is(irq.count, 1);
  time.advanceTo(1_000_000_000);
  assert.is(irq.count, 1);
});

test('access modes: LSB only and MSB only', () => {
  const { pit, time } = makePit();
  pit.writeRegister(CONTROL, 0x14); // channel 0, LSB only, mode 2
  pit.writeRegister(CHANNEL0, 200);
  time.advanceTo(83_810); // 100 ticks
  assert.is(pit.readRegister(CHANNEL0), 100);
  assert.is(pit.readRegister(CHANNEL0), 100);
  pit.writeRegister(CONTROL, 0x24); // channel 0, MSB only, mode 2
  pit.writeRegister(CHANNEL0, 0x02); // 0x0200 = 512
  assert.is(pit.readRegister(CHANNEL0), 0x02);
  time.advanceTo(83_810 + 83_810); // 100 ticks after the load: 412 = 0x019c
  assert.is(pit.readRegister(CHANNEL0), 0x01);
  pit.writeRegister(CONTROL, 0x00); // counter latch command for channel 0 (RW = 00)
  time.advanceTo(83_810 + 83_810 + 83_810); // 200 ticks after the load: live count 312 = 0x0138
  pit.writeRegister(CHANNEL0, 0x03); // reload 0x0300 = 768 at 251430 ns: the latch still holds 412
  assert.is(pit.readRegister(CHANNEL0), 0x01); // the latched MSB of 412
  assert.is(pit.readRegister(CHANNEL0), 0x03); // live: 768, just loaded
});

test('read-back of status and count: status first, then the count bytes', () => {
  const { pit, time } = makePit();
  pit.writeRegister(CONTROL, 0x34);
  pit.writeRegister(CHANNEL0, 0xa9);
  pit.writeRegister(CHANNEL0, 0x04);
  time.advanceTo(83_810);
  pit.writeRegister(CONTROL, 0xc2); // read-back: count and status of channel 0
  time.advanceTo(167_620);
  assert.is(pit.readRegister(CHANNEL0), 0xb4); // OUT high, RW=11, mode 2
  assert.is(pit.readRegister(CHANNEL0), 0x45); // the count at the command: 1093
  assert.is(pit.readRegister(CHANNEL0), 0x04);
});

test('read-back can latch several channels; mode 6 reads back as written but acts as mode 2', () => {
  const { pit } = makePit();
  pit.writeRegister(CONTROL, 0x1c); // channel 0, LSB only, mode 6 (= 2)
  pit.writeRegister(CONTROL, 0x70); // channel 1, LSB then MSB, mode 0
  pit.writeRegister(CONTROL, 0xee); // read-back: status of channels 0, 1, 2
  assert.is(pit.readRegister(0), 0xdc); // OUT high, null count, RW=01, mode bits 110
  assert.is(pit.readRegister(1), 0x70); // OUT low, null count, RW=11, mode 0
  assert.is(pit.readRegister(2), 0xb6); // untouched channel 2: reset state, OUT high, RW=11, mode 3
});

test('a control word stops the channel and cancels channel 0\'s timer', () => {
  const { pit, time, irq } = makePit();
  pit.writeRegister(CONTROL, 0x34);
  pit.writeRegister(CHANNEL0, 0xa9);
  pit.writeRegister(CHANNEL0, 0x04);
  assert.is(time.pending().length, 1);
  pit.writeRegister(CONTROL, 0x34);
  assert.is(time.pending().length, 0);
  time.advanceTo(10_000_000);
  assert.is(irq.count, 0);
});

test('a late host timer coalesces missed periods into one IRQ and stays in phase', () => {
  const { pit, time, irq } = makePit();
  pit.writeRegister(CONTROL, 0x36);
  pit.writeRegister(CHANNEL0, 0);
  pit.writeRegister(CHANNEL0, 0);
  time.jumpLateTo(164_776_204 + 1000); // 3 periods passed before the timer ran
  assert.is(irq.count, 1);
  assert.equal(time.pending().map((t) => t.due), [219_701_605n]); // the 4th period's edge
  time.advanceTo(274_627_006);
  assert.is(irq.count, 3);
});

test('channel 2 with BCD counting, gated by port 0x61', () => {
  const { pit, time } = makePit();
  const portB = new PitSpeakerPort({ pit, now: time.now });
  pit.writeRegister(CONTROL, 0xb1); // channel 2, LSB then MSB, mode 0, BCD
  pit.writeRegister(CHANNEL2, 0x00); // BCD 1000
  pit.writeRegister(CHANNEL2, 0x10);
  time.advanceTo(83_810);
  assert.is(pit.readRegister(CHANNEL2), 0x00); // gate low: not counting
  assert.is(pit.readRegister(CHANNEL2), 0x10);
  assert.is(portB.readRegister(0) & 0x21, 0x00); // gate low, OUT low
  portB.writeRegister(0, 0x01);
  assert.is(pit.gate(CHANNEL2), true);
  time.advanceTo(83_810 + 839); // one tick: BCD 0999
  assert.is(pit.readRegister(CHANNEL2), 0x99);
  assert.is(pit.readRegister(CHANNEL2), 0x09);
  assert.is(portB.readRegister(0) & 0x21, 0x01);
});

test('port 0x61: Linux pit_calibrate_tsc() sees OUT2 rise after the programmed latch', () => {
  const { pit, time } = makePit();
  const portB = new PitSpeakerPort({ pit, now: time.now });
  portB.writeRegister(0, (portB.readRegister(0) & ~0x02) | 0x01); // gate high, speaker off
  pit.writeRegister(CONTROL, 0xb0); // channel 2, LSB then MSB, mode 0, binary
  pit.writeRegister(CHANNEL2, 11931 & 0xff); // 10 ms: 1193182 / 100
  pit.writeRegister(CHANNEL2, 11931 >> 8);
  time.advanceTo(9_999_312);
  assert.is(portB.readRegister(0) & 0x20, 0);
  time.advanceTo(9_999_313);
  assert.is(portB.readRegister(0) & 0x20, 0x20);
});

test('port 0x61: stored bits, refresh toggle every 15.085 us', () => {
  const { pit, time } = makePit();
  const portB = new PitSpeakerPort({ pit, now: time.now });
  portB.writeRegister(0, 0xfe); // bits 1-3 stored, gate low, read-only bits ignored
  assert.is(portB.readRegister(0), 0x0e | 0x20); // channel 2 never programmed: OUT high (mode 3 reset state)
  time.advanceTo(15_085);
  assert.is(portB.readRegister(0) & 0x10, 0x10);
  time.advanceTo(30_170);
  assert.is(portB.readRegister(0) & 0x10, 0x00);
  assert.equal(portB.snapshot(), { latched: 0x0e });
});

test('port 0x61: snapshot() round-trips through JSON; a bad state changes nothing', () => {
  const { pit, time } = makePit();
  const portB = new PitSpeakerPort({ pit, now: time.now });
  portB.writeRegister(0, 0x0b); // bits 1 and 3 stored, gate high
  const saved = JSON.parse(JSON.stringify(portB.snapshot())) as PitSpeakerPortState;
  assert.equal(saved, { latched: 0x0a });
  const fresh = new PitSpeakerPort({ pit, now: time.now });
  fresh.restore(saved);
  assert.is(fresh.readRegister(0) & 0x0f, 0x0b); // stored bits from the state, the gate from the Pit
  assert.throws(() => fresh.restore({ latched: 0x01 }), (e: unknown) => e instanceof PitError && /latched is 1, not port B bits 1-3/.test(e.message));
  assert.throws(() => fresh.restore({ latched: 0x0a, gate: true } as PitSpeakerPortState), /field 'gate'/);
  assert.equal(fresh.snapshot(), { latched: 0x0a });
});

test('mode 0 gate low holds the count; mode 2 gate rising edge reloads', () => {
  const { pit, time } = makePit();
  pit.setGate(CHANNEL2, true);
  pit.writeRegister(CONTROL, 0xb0); // channel 2, mode 0
  pit.writeRegister(CHANNEL2, 0x00);
  pit.writeRegister(CHANNEL2, 0x01); // 256
  time.advanceTo(83_810); // 100 ticks: 156
  pit.setGate(CHANNEL2, false);
  time.advanceTo(1_000_000);
  assert.is(pit.readRegister(CHANNEL2), 156);
  assert.is(pit.readRegister(CHANNEL2), 0);
  pit.setGate(CHANNEL2, true);
  time.advanceTo(1_000_000 + 83_810); // 100 more ticks: 56
  assert.is(pit.readRegister(CHANNEL2), 56);
  assert.is(pit.readRegister(CHANNEL2), 0);

  pit.writeRegister(CONTROL, 0xb4); // channel 2, mode 2
  pit.writeRegister(CHANNEL2, 0x00);
  pit.writeRegister(CHANNEL2, 0x01); // 256, loaded at 1083810
  time.advanceTo(1_083_810 + 83_810); // 100 ticks: 156
  pit.setGate(CHANNEL2, false);
  assert.is(pit.output(CHANNEL2), true); // a low gate forces OUT high in mode 2
  pit.setGate(CHANNEL2, true); // reload
  assert.is(pit.readRegister(CHANNEL2), 0x00);
  assert.is(pit.readRegister(CHANNEL2), 0x01);
});

test('mode 1 waits for a gate rising edge, OUT low until terminal count', () => {
  const { pit, time } = makePit();
  pit.writeRegister(CONTROL, 0xb2); // channel 2, LSB then MSB, mode 1
  pit.writeRegister(CHANNEL2, 100);
  pit.writeRegister(CHANNEL2, 0);
  time.advanceTo(1_000_000);
  assert.is(pit.output(CHANNEL2), true);
  assert.is(pit.readRegister(CHANNEL2), 100);
  assert.is(pit.readRegister(CHANNEL2), 0);
  pit.setGate(CHANNEL2, true); // trigger at 1 ms
  time.advanceTo(1_000_000 + 83_809); // 99 ticks
  assert.is(pit.output(CHANNEL2), false);
  time.advanceTo(1_000_000 + 83_810); // 100 ticks
  assert.is(pit.output(CHANNEL2), true);
});

test('snapshot() round-trips through JSON and restore() re-arms channel 0 on a fresh Pit', () => {
  const { pit, time } = makePit();
  pit.writeRegister(CONTROL, 0x34);
  pit.writeRegister(CHANNEL0, 0xa9);
  pit.writeRegister(CHANNEL0, 0x04);
  time.advanceTo(83_810);
  const saved = JSON.parse(JSON.stringify(pit.snapshot())) as PitState;
  assert.is(typeof saved.channels[0].startNs, 'string'); // bigints are decimal strings
  pit.dispose();
  assert.is(time.pending().length, 0);
  const irq = { count: 0, trigger() { this.count++; } };
  const copy = new Pit({ now: time.now, schedule: time.schedule, interrupt: irq });
  copy.restore(saved);
  assert.equal(copy.snapshot(), saved);
  assert.is(copy.readRegister(CHANNEL0), 0x45);
  assert.is(copy.readRegister(CHANNEL0), 0x04);
  time.advanceTo(999_848);
  assert.is(irq.count, 1);
});

test('restore() is in place: the same Pit re-arms its own timer and still raises its interrupt line', () => {
  const { pit, time, irq } = makePit();
  pit.writeRegister(CONTROL, 0x34); // channel 0, mode 2, 1193
  pit.writeRegister(CHANNEL0, 0xa9);
  pit.writeRegister(CHANNEL0, 0x04);
  const saved = pit.snapshot();
  pit.writeRegister(CONTROL, 0x30); // channel 0, mode 0: stops until a count is written
  assert.is(time.pending().length, 0);
  pit.restore(saved);
  assert.is(time.pending().length, 1); // one timer, armed from the saved start
  time.advanceTo(999_848);
  assert.is(irq.count, 1);
  time.advanceTo(1_999_695);
  assert.is(irq.count, 2);
  pit.restore(saved); // a timer already pending is replaced, not doubled
  assert.is(time.pending().length, 1);
  time.advanceTo(2_999_543);
  assert.is(irq.count, 3);
});

test('restore() refuses a bad state in one line and changes nothing', () => {
  const { pit, time, irq } = makePit();
  pit.writeRegister(CONTROL, 0x34);
  pit.writeRegister(CHANNEL0, 0xa9);
  pit.writeRegister(CHANNEL0, 0x04);
  const before = pit.snapshot();
  const pending = time.pending().length;
  const pitError = (pattern: RegExp) => (e: unknown) => e instanceof PitError && pattern.test(e.message) && !e.message.includes('\n');
  const withChannel = (index: number, change: Partial<Record<keyof PitChannelState, unknown>>) =>
    ({ channels: before.channels.map((c, i) => (i === index ? { ...c, ...change } : c)) }) as PitState;
  assert.throws(() => pit.restore({ channels: [] }), pitError(/channels has 0 entries, not 3/));
  assert.throws(() => pit.restore(withChannel(2, { startNs: 5 })), pitError(/channels\[2\]\.startNs is 5, not a non-negative integer as a decimal string/));
  assert.throws(() => pit.restore(withChannel(2, { pausedTicks: '1e3' })), pitError(/channels\[2\]\.pausedTicks is "1e3"/));
  assert.throws(() => pit.restore(withChannel(1, { reload: 0 })), pitError(/channels\[1\]\.reload is 0, not an integer 1\.\.65536/));
  assert.throws(() => pit.restore(withChannel(1, { access: 0 })), pitError(/access is 0, not an access mode 1\.\.3/));
  assert.throws(() => pit.restore(withChannel(0, { latchedCount: [1, 2, 3] })), pitError(/latchedCount has 3 entries, more than 2/));
  assert.throws(() => pit.restore(withChannel(0, { gate: 1 })), pitError(/channels\[0\]\.gate is 1, not true or false/));
  assert.throws(() => pit.restore(withChannel(0, { modeBits: undefined })), pitError(/modeBits is missing/));
  // Channel 0 is valid and changed, channel 2 is not: nothing is applied and the timer is untouched.
  const mixed = withChannel(0, { reload: 100 });
  mixed.channels[2] = { ...mixed.channels[2], latchedStatus: 256 };
  assert.throws(() => pit.restore(mixed), pitError(/channels\[2\]\.latchedStatus is 256, not a byte/));
  assert.equal(pit.snapshot(), before);
  assert.is(time.pending().length, pending);
  time.advanceTo(999_848);
  assert.is(irq.count, 1);
});

test('errors', () => {
  const { pit } = makePit();
  assert.throws(() => pit.setGate(3, true), (e: unknown) => e instanceof PitError && /channel 3 does not exist/.test(e.message));
  assert.throws(() => pit.output(-1), /channels are 0, 1 and 2/);
  assert.throws(() => pit.restore({ channels: [] }), (e: unknown) => e instanceof PitError && /channels has 0 entries, not 3/.test(e.message));
});

test.run();

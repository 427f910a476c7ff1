import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { I8042, I8042Error, I8042_PORT_COUNT, I8042_PORT_COUNT_WITH_PIT_SPEAKER } from '../../../../src/devices/legacy/i8042';
import type { I8042State } from '../../../../src/devices/legacy/i8042';
import { I8042_PORT as I8042_BASE_PORT, I8042_PORT_AFTER_SPEAKER as I8042_BASE_PORT_WITH_PIT_SPEAKER } from '../../../../src/main/layout';
import { Bus } from '../../../../src/devices/bus/bus';
import { byteRegisters } from '../../../../src/devices/bus/width-adapter';

test('placement is crosvm\'s: 0x61..0x64, or 0x62..0x64 when the PIT owns port 0x61', () => {
  assert.is(I8042_BASE_PORT, 0x61);
  assert.is(I8042_PORT_COUNT, 4);
  assert.is(I8042_BASE_PORT_WITH_PIT_SPEAKER, 0x62);
  assert.is(I8042_PORT_COUNT_WITH_PIT_SPEAKER, 3);
});

function onBus(basePort?: number) {
  let resets = 0;
  let interrupts = 0;
  const bus = new Bus('io');
  const device = new I8042({ onReset: () => resets++, basePort, keyboardInterrupt: { trigger: () => interrupts++ } });
  bus.insert(basePort ?? 0x61, basePort === 0x62 ? 3 : 4, byteRegisters(device));
  // The board claims the data port apart from the rest, as here.
  bus.insert(0x60, 1, byteRegisters({ name: 'i8042 data', readRegister: () => device.readPort(0x60), writeRegister: (_, v) => device.writePort(0x60, v) }));
  const read = (port: number) => {
    const data = new Uint8Array(1);
    bus.read(port, data);
    return data[0];
  };
  const write = (port: number, value: number) => bus.write(port, Uint8Array.of(value));
  /** Every byte waiting in the output buffer, read the way SeaBIOS and Linux do: while status.OBF. */
  const drain = () => {
    const bytes: number[] = [];
    while ((read(0x64) & 0x01) !== 0 && bytes.length < 32) bytes.push(read(0x60));
    return bytes;
  };
  return { bus, device, read, write, drain, resets: () => resets, interrupts: () => interrupts };
}

test('0xfe to port 0x64 pulses the reset line', () => {
  const machine = onBus();
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 1);
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 2);
});

test('pulse commands reset only when they pulse output bit 0; other writes do not reset', () => {
  const machine = onBus();
  machine.write(0x64, 0xfd); // pulses bit 1 only
  machine.write(0x64, 0xff); // pulses nothing
  machine.write(0x64, 0x20);
  machine.drain();
  machine.write(0x61, 0xfe);
  machine.write(0x62, 0xfe);
  machine.write(0x63, 0xfe);
  assert.is(machine.resets(), 0);
  machine.write(0x64, 0xf0); // pulses bits 0-3
  assert.is(machine.resets(), 1);
});

test('writing the output port with bit 0 clear resets (command 0xd1); with it set, it is only stored', () => {
  const machine = onBus();
  machine.write(0x64, 0xd1);
  machine.write(0x60, 0xdf);
  assert.is(machine.resets(), 0);
  machine.write(0x64, 0xd0);
  assert.equal(machine.drain(), [0xdf]);
  machine.write(0x64, 0xd1);
  machine.write(0x60, 0xde);
  assert.is(machine.resets(), 1);
});

test('reads at reset: status 0x18 (nothing to read, ready for a command), port B 0x20, unused ports 0', () => {
  const machine = onBus();
  assert.is(machine.read(0x64), 0x18); // QEMU's KBD_STAT_CMD | KBD_STAT_UNLOCKED: OBF and IBF clear, so kb_wait() sees ready
  assert.is(machine.read(0x61), 0x20); // timer 2 output high, so pit_calibrate_tsc() cannot hang
  assert.is(machine.read(0x62), 0x00);
  assert.is(machine.read(0x63), 0x00);
  assert.is(machine.read(0x60), 0x00); // an empty buffer: nothing read yet
});

test('SeaBIOS ps2_keyboard_setup sequence: self-tests, command byte, keyboard reset, scancode set, enable', () => {
  const machine = onBus();
  assert.equal(machine.drain(), []); // i8042_flush
  machine.write(0x64, 0xad); // disable keyboard
  machine.write(0x64, 0xa7); // disable aux
  machine.write(0x64, 0xaa);
  assert.equal(machine.drain(), [0x55], 'controller self-test passes');
  assert.is(machine.read(0x64) & 0x04, 0x04, 'the system flag is set by the self-test');
  machine.write(0x64, 0xab);
  assert.equal(machine.drain(), [0x00], 'keyboard interface test passes');
  machine.write(0x64, 0x60);
  machine.write(0x60, 0x30); // command byte: both ports disabled, no interrupts
  machine.write(0x64, 0x20);
  assert.equal(machine.drain(), [0x30]);
  machine.write(0x60, 0xff); // keyboard reset
  assert.equal(machine.drain(), [0xfa, 0xaa]);
  machine.write(0x60, 0xf5);
  assert.equal(machine.drain(), [0xfa]);
  machine.write(0x60, 0xf0);
  assert.equal(machine.drain(), [0xfa]);
  machine.write(0x60, 0x02); // scancode set 2
  assert.equal(machine.drain(), [0xfa]);
  machine.write(0x60, 0xf0);
  machine.write(0x60, 0x00); // which set?
  assert.equal(machine.drain(), [0xfa, 0xfa, 0x02]);
  machine.write(0x60, 0xf4);
  assert.equal(machine.drain(), [0xfa]);
  assert.is(machine.read(0x64) & 0x20, 0, 'every byte came from the keyboard port, not aux');
});

test('keyboard commands: get id (translated), echo, LEDs with a parameter, unknown ones answered with resend', () => {
  const machine = onBus();
  machine.write(0x60, 0xf2);
  assert.equal(machine.drain(), [0xfa, 0xab, 0x41]);
  machine.write(0x60, 0xee);
  assert.equal(machine.drain(), [0xee]);
  machine.write(0x60, 0xed);
  machine.write(0x60, 0x07);
  assert.equal(machine.drain(), [0xfa, 0xfa]);
  machine.write(0x60, 0xf8);
  assert.equal(machine.drain(), [0xfa]);
  machine.write(0x60, 0x42);
  assert.equal(machine.drain(), [0xfe]);
});

test('controller loopback commands: 0xd2 puts a keyboard byte in the buffer, 0xd3 an aux one (status bit 5); aux writes go nowhere', () => {
  const machine = onBus();
  machine.write(0x64, 0xd3);
  machine.write(0x60, 0x5a);
  assert.is(machine.read(0x64) & 0x21, 0x21);
  assert.is(machine.read(0x60), 0x5a);
  machine.write(0x64, 0xd2);
  machine.write(0x60, 0x1c);
  assert.is(machine.read(0x64) & 0x21, 0x01);
  assert.is(machine.read(0x60), 0x1c);
  machine.write(0x64, 0xd4);
  machine.write(0x60, 0xff); // a mouse reset, and no mouse
  assert.equal(machine.drain(), []);
  machine.write(0x64, 0xa9);
  assert.equal(machine.drain(), [0x00]);
});

test('an empty buffer reads as its last byte; the queue is bounded when the guest never reads', () => {
  const machine = onBus();
  machine.write(0x64, 0xaa);
  assert.is(machine.read(0x60), 0x55);
  assert.is(machine.read(0x60), 0x55);
  for (let i = 0; i < 40; i++) machine.write(0x64, 0xab);
  assert.is(machine.drain().length, 16);
});

test('IRQ 1: an edge when a byte reaches the empty buffer with the keyboard interrupt enabled, and for each next byte', () => {
  const machine = onBus();
  machine.write(0x64, 0x60);
  machine.write(0x60, 0x00); // interrupts off
  machine.write(0x60, 0xff);
  assert.is(machine.interrupts(), 0);
  machine.write(0x64, 0x60);
  machine.write(0x60, 0x01); // on, with two bytes waiting: the line rises now
  assert.is(machine.interrupts(), 1);
  machine.read(0x60); // 0xfa gone, 0xaa comes up: another edge
  assert.is(machine.interrupts(), 2);
  machine.read(0x60); // empty: no edge
  assert.is(machine.interrupts(), 2);
  machine.write(0x60, 0xf4);
  assert.is(machine.interrupts(), 3);
});

test('placed at 0x62, port 0x64 is still the command port', () => {
  const machine = onBus(0x62);
  assert.is(machine.read(0x64), 0x18);
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 1);
  assert.is(machine.bus.find(0x61), undefined);
});

test('snapshot() round-trips through JSON mid-command; restore() keeps the device in place and wired', () => {
  const machine = onBus(0x62);
  machine.write(0x60, 0xff); // two reply bytes queued
  machine.read(0x60);
  machine.write(0x60, 0xed); // waiting for the LED parameter
  const saved = JSON.parse(JSON.stringify(machine.device.snapshot())) as I8042State;
  assert.is(saved.basePort, 0x62);
  assert.equal(saved.queue, [0xaa, 0xfa]);
  const fresh = onBus(0x62);
  fresh.device.restore(saved);
  assert.equal(fresh.device.snapshot(), saved);
  fresh.write(0x60, 0x01); // the LED parameter
  assert.equal(fresh.drain(), [0xaa, 0xfa, 0xfa]);
  machine.device.restore(saved); // in place: the same object, still on the bus, still calling onReset
  assert.is(machine.bus.find(0x64)?.device.name, 'i8042');
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 1);
});

test('restore() refuses a bad state and changes nothing', () => {
  const machine = onBus(0x62);
  const good = machine.device.snapshot();
  const i8042Error = (pattern: RegExp) => (e: unknown) => e instanceof I8042Error && pattern.test(e.message) && !e.message.includes('\n');
  // Placement is the bus entry's: a state saved at 0x61 cannot be decoded at 0x62.
  assert.throws(() => machine.device.restore({ ...good, basePort: 0x61 }), i8042Error(/basePort is 0x61, but this i8042 sits at 0x62/));
  assert.throws(() => machine.device.restore({ ...good, basePort: -1 }), i8042Error(/basePort is -1, not a 16-bit port/));
  assert.throws(() => machine.device.restore({ ...good, status: 256 }), i8042Error(/status is 256, not a byte/));
  assert.throws(() => machine.device.restore({ ...good, queue: [1], aux: [] }), i8042Error(/queue has 1 bytes but aux says where 0 came from/));
  assert.throws(() => machine.device.restore({} as I8042State), i8042Error(/basePort is missing/));
  assert.throws(() => machine.device.restore(null as unknown as I8042State), i8042Error(/the state is null, not an object/));
  assert.throws(() => machine.device.restore({ ...good, extra: 1 } as I8042State), i8042Error(/field 'extra'/));
  assert.equal(machine.device.snapshot(), good);
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 1);
});

test.run();

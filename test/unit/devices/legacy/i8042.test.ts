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
  const bus = new Bus('io');
  const device = new I8042({ onReset: () => resets++, basePort });
  bus.insert(basePort ?? 0x61, basePort === 0x62 ? 3 : 4, byteRegisters(device));
  const read = (port: number) => {
    const data = new Uint8Array(1);
    bus.read(port, data);
    return data[0];
  };
  const write = (port: number, value: number) => bus.write(port, Uint8Array.of(value));
  return { bus, device, read, write, resets: () => resets };
}

test('0xfe to port 0x64 pulses the reset line', () => {
  const machine = onBus();
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 1);
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 2);
});

test('other writes do not reset', () => {
  const machine = onBus();
  machine.write(0x64, 0xfd);
  machine.write(0x64, 0x20);
  machine.write(0x61, 0xfe);
  machine.write(0x62, 0xfe);
  machine.write(0x63, 0xfe);
  assert.is(machine.resets(), 0);
});

test('reads: status 0, port B 0x20, unused ports 0', () => {
  const machine = onBus();
  assert.is(machine.read(0x64), 0x00); // no data, input buffer empty: Linux's kb_wait() sees ready
  assert.is(machine.read(0x61), 0x20); // timer 2 output high, so pit_calibrate_tsc() cannot hang
  assert.is(machine.read(0x62), 0x00);
  assert.is(machine.read(0x63), 0x00);
  assert.is(machine.bus.read(0x60, new Uint8Array(1)), false); // 0x60 is not claimed (as crosvm)
});

test('placed at 0x62, port 0x64 is still the command port', () => {
  const machine = onBus(0x62);
  assert.is(machine.read(0x64), 0x00);
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 1);
  assert.is(machine.bus.find(0x61), undefined);
});

test('snapshot() round-trips through JSON; restore() keeps the device in place and wired', () => {
  const machine = onBus(0x62);
  const saved = JSON.parse(JSON.stringify(machine.device.snapshot())) as I8042State;
  assert.equal(saved, { basePort: 0x62 });
  const fresh = new I8042({ onReset: () => {}, basePort: 0x62 });
  fresh.restore(saved);
  assert.equal(fresh.snapshot(), { basePort: 0x62 });
  machine.device.restore(saved); // in place: the same object, still on the bus, still calling onReset
  assert.is(machine.bus.find(0x64)?.device.name, 'i8042');
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 1);
});

test('restore() refuses a bad state and changes nothing', () => {
  const machine = onBus(0x62);
  const i8042Error = (pattern: RegExp) => (e: unknown) => e instanceof I8042Error && pattern.test(e.message) && !e.message.includes('\n');
  // Placement is the bus entry's: a state saved at 0x61 cannot be decoded at 0x62.
  assert.throws(() => machine.device.restore({ basePort: 0x61 }), i8042Error(/basePort is 0x61, but this i8042 sits at 0x62/));
  assert.throws(() => machine.device.restore({ basePort: -1 }), i8042Error(/basePort is -1, not a 16-bit port/));
  assert.throws(() => machine.device.restore({} as I8042State), i8042Error(/basePort is missing/));
  assert.throws(() => machine.device.restore(null as unknown as I8042State), i8042Error(/the state is null, not an object/));
  assert.throws(() => machine.device.restore({ basePort: 0x62, extra: 1 } as I8042State), i8042Error(/field 'extra'/));
  assert.equal(machine.device.snapshot(), { basePort: 0x62 });
  machine.write(0x64, 0xfe);
  assert.is(machine.resets(), 1);
});

test.run();

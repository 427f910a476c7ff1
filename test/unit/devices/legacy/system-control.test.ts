import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SystemControlPortA } from '../../../../src/devices/legacy/system-control';
import { Debugcon } from '../../../../src/devices/legacy/debugcon';

test('port 0x92: SeaBIOS\'s set_a20 read-modify-write keeps bit 1 and never resets; a set bit 0 does', () => {
  let resets = 0;
  const port = new SystemControlPortA(() => resets++);
  assert.is(port.readRegister(), 0x00);
  port.writeRegister(0, port.readRegister() | 0x02); // A20 on
  assert.is(port.readRegister(), 0x02);
  port.writeRegister(0, port.readRegister() & ~0x02); // A20 off
  assert.is(port.readRegister(), 0x00);
  assert.is(resets, 0);
  port.writeRegister(0, 0x03);
  assert.is(resets, 1);
  assert.is(port.readRegister(), 0x02); // bit 0 reads 0 again, so the next set bit is another reset
  port.writeRegister(0, 0x01);
  assert.is(resets, 2);
});

test('port 0x92: snapshot round-trips, and a bad state is refused with one line', () => {
  const port = new SystemControlPortA(() => {});
  port.writeRegister(0, 0x02);
  const saved = JSON.parse(JSON.stringify(port.snapshot()));
  const fresh = new SystemControlPortA(() => {});
  fresh.restore(saved);
  assert.is(fresh.readRegister(), 0x02);
  assert.throws(() => fresh.restore({ value: 300 }), (e: Error) => /value is 300, not a byte/.test(e.message) && !e.message.includes('\n'));
});

test('debugcon: reads 0xe9 (SeaBIOS logs only then); each write sends its low byte, copied', () => {
  const bytes: Uint8Array[] = [];
  const debugcon = new Debugcon((b) => bytes.push(b));
  const data = new Uint8Array(1);
  debugcon.read(0, data);
  assert.is(data[0], 0xe9);
  const buffer = Uint8Array.of(0x41);
  debugcon.write(0, buffer);
  buffer[0] = 0x42; // the bus reuses its buffer
  debugcon.write(0, Uint8Array.of(0x43, 0x00));
  assert.equal(bytes.map((b) => [...b]), [[0x41], [0x43]]);
});

test.run();

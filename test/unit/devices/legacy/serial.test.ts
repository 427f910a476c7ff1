import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Serial, SerialError, SERIAL_FIFO_SIZE } from '../../../../src/devices/legacy/serial';

// Register offsets and values written from the PC16550D datasheet, not from the model.
const RBR_THR = 0, IER = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7;
const DLL = 0, DLM = 1;

function makeSerial(extra: { inputDrained?: () => void } = {}) {
  const line = { count: 0, trigger() { this.count++; } };
  const sent: number[] = [];
  const serial = new Serial({ interrupt: line, output: (bytes) => sent.push(...bytes), ...extra });
  return { serial, line, sent };
}

test('registers after reset', () => {
  const { serial } = makeSerial();
  assert.is(serial.readRegister(IER), 0x00);
  assert.is(serial.readRegister(IIR), 0x01); // no interrupt pending, FIFOs off
  assert.is(serial.readRegister(LCR), 0x00);
  assert.is(serial.readRegister(MCR), 0x00);
  assert.is(serial.readRegister(LSR), 0x60); // THRE | TEMT
  assert.is(serial.readRegister(MSR), 0xb0); // DCD | DSR | CTS, as crosvm reports a connected console
  assert.is(serial.readRegister(SCR), 0x00);
});

test('THR writes go to the output sink; no sink discards', () => {
  const { serial, sent } = makeSerial();
  for (const byte of Buffer.from('hi\n')) serial.writeRegister(RBR_THR, byte);
  assert.equal(sent, [0x68, 0x69, 0x0a]);
  assert.is(serial.readRegister(LSR), 0x60); // still empty: the transmitter is instantaneous
  const silent = new Serial({ interrupt: { trigger() {} } });
  silent.writeRegister(RBR_THR, 0x41); // must not throw
});

test('DLAB switches offsets 0 and 1 to the divisor latch', () => {
  const { serial, sent } = makeSerial();
  serial.writeRegister(LCR, 0x80);
  assert.is(serial.readRegister(DLL), 12); // 9600 baud at reset
  assert.is(serial.readRegister(DLM), 0);
  serial.writeRegister(DLL, 0x01); // 115200 baud
  serial.writeRegister(DLM, 0x02);
  assert.is(serial.readRegister(DLL), 0x01);
  assert.is(serial.readRegister(DLM), 0x02);
  assert.equal(sent, []); // the DLL write was not transmitted
  serial.writeRegister(LCR, 0x03); // 8N1, DLAB off
  assert.is(serial.readRegister(IER), 0x00); // the DLM write did not touch IER
  assert.is(serial.readRegister(LCR), 0x03);
  serial.writeRegister(LCR, 0x83);
  assert.is(serial.readRegister(DLM), 0x02);
  assert.equal(serial.snapshot().divisor, 0x0201);
});

test('IER keeps only its four low bits', () => {
  const { serial } = makeSerial();
  serial.writeRegister(IER, 0xf0);
  assert.is(serial.readRegister(IER), 0x00);
});

test('enabling the THR-empty interrupt raises it at once; reading IIR acknowledges it', () => {
  const { serial, line } = makeSerial();
  serial.writeRegister(IER, 0x02);
  assert.is(line.count, 1);
  assert.is(serial.readRegister(IIR), 0x02);
  assert.is(serial.readRegister(IIR), 0x01); // the read cleared it
  serial.writeRegister(IER, 0x02); // already enabled: no new edge
  assert.is(line.count, 1);
  assert.is(serial.readRegister(IIR), 0x01);
});

test('each THR write raises a THR-empty interrupt', () => {
  const { serial, line } = makeSerial();
  serial.writeRegister(IER, 0x02);
  serial.writeRegister(RBR_THR, 0x61);
  serial.writeRegister(RBR_THR, 0x62);
  serial.writeRegister(RBR_THR, 0x63);
  assert.is(line.count, 4); // IER enable + 3 bytes
  assert.is(serial.readRegister(IIR), 0x02);
});

test('no interrupt is triggered while the source is disabled', () => {
  const { serial, line } = makeSerial();
  serial.writeRegister(RBR_THR, 0x61);
  assert.is(serial.enqueueInput(Uint8Array.of(0x31)), 1);
  assert.is(line.count, 0);
  assert.is(serial.readRegister(IIR), 0x01);
  assert.is(serial.readRegister(LSR), 0x61); // DR | THRE | TEMT
});

test('input raises the received-data interrupt on the first byte, reads drain it', () => {
  const { serial, line } = makeSerial();
  serial.writeRegister(FCR, 0x01);
  serial.writeRegister(IER, 0x01);
  assert.is(line.count, 0);
  assert.is(serial.enqueueInput(Uint8Array.of(0x61, 0x62)), 2);
  assert.is(line.count, 1);
  assert.is(serial.enqueueInput(Uint8Array.of(0x63)), 1);
  assert.is(line.count, 1); // data was already pending: no new edge
  assert.is(serial.readRegister(IIR), 0xc4); // FIFOs enabled, received data available
  assert.is(serial.readRegister(RBR_THR), 0x61);
  assert.is(serial.readRegister(RBR_THR), 0x62);
  assert.is(serial.readRegister(LSR) & 0x01, 0x01);
  assert.is(serial.readRegister(RBR_THR), 0x63);
  assert.is(serial.readRegister(LSR), 0x60);
  assert.is(serial.readRegister(IIR), 0xc1);
  serial.enqueueInput(Uint8Array.of(0x64));
  assert.is(line.count, 2);
});

test('the receive FIFO holds 64 bytes with FIFOs enabled and one without', () => {
  const { serial } = makeSerial();
  assert.is(serial.receiveSpace, 1);
  assert.is(serial.enqueueInput(Uint8Array.of(1, 2, 3)), 1); // 16450 mode: a single RBR
  assert.is(serial.enqueueInput(Uint8Array.of(4)), 0);
  serial.writeRegister(FCR, 0x01); // enabling FIFOs clears them
  assert.is(serial.readRegister(LSR) & 0x01, 0);
  const input = new Uint8Array(70).map((_, i) => i);
  assert.is(SERIAL_FIFO_SIZE, 64);
  assert.is(serial.enqueueInput(input), 64);
  assert.is(serial.receiveSpace, 0);
  assert.is(serial.enqueueInput(input.subarray(64)), 0);
  for (let i = 0; i < 64; i++) assert.is(serial.readRegister(RBR_THR), i);
  assert.is(serial.receiveSpace, 64);
});

test('inputDrained is called when a guest read empties the receive FIFO', () => {
  let drained = 0;
  const { serial } = makeSerial({ inputDrained: () => drained++ });
  serial.writeRegister(FCR, 0x01);
  serial.enqueueInput(Uint8Array.of(1, 2));
  serial.readRegister(RBR_THR);
  assert.is(drained, 0);
  serial.readRegister(RBR_THR);
  assert.is(drained, 1);
  serial.readRegister(RBR_THR); // reading an empty RBR is not a drain
  assert.is(drained, 1);
});

test('FCR: IIR bits 7:6 follow the FIFO enable; clear-receive empties the FIFO', () => {
  const { serial } = makeSerial();
  serial.writeRegister(FCR, 0xc7); // enable, clear both, trigger level 14
  assert.is(serial.readRegister(IIR), 0xc1);
  serial.enqueueInput(Uint8Array.of(1, 2, 3));
  serial.writeRegister(FCR, 0xc3); // clear receive, FIFOs stay enabled
  assert.is(serial.readRegister(LSR), 0x60);
  assert.is(serial.receiveSpace, 64);
  serial.enqueueInput(Uint8Array.of(1));
  serial.writeRegister(FCR, 0xc1); // no clear bit: data stays
  assert.is(serial.readRegister(LSR), 0x61);
  serial.writeRegister(FCR, 0x00); // disabling clears both FIFOs
  assert.is(serial.readRegister(IIR), 0x01);
  assert.is(serial.readRegister(LSR), 0x60);
});

test('loopback: THR feeds the receiver, output is suppressed, MSR mirrors MCR', () => {
  const { serial, sent } = makeSerial();
  // Linux's autoconfig check: MCR = LOOP | OUT2 | RTS must read MSR status bits as DCD | CTS.
  serial.writeRegister(MCR, 0x1a);
  assert.is(serial.readRegister(MCR), 0x1a);
  assert.is(serial.readRegister(MSR) & 0xf0, 0x90);
  serial.writeRegister(MCR, 0x1f); // all outputs on
  assert.is(serial.readRegister(MSR) & 0xf0, 0xf0);
  serial.writeRegister(FCR, 0x01);
  serial.writeRegister(RBR_THR, 0x55);
  serial.writeRegister(RBR_THR, 0xaa);
  assert.equal(sent, []);
  assert.is(serial.enqueueInput(Uint8Array.of(1)), 0); // the receiver is wired to the transmitter
  assert.is(serial.readRegister(LSR), 0x61);
  assert.is(serial.readRegister(RBR_THR), 0x55);
  assert.is(serial.readRegister(RBR_THR), 0xaa);
  serial.writeRegister(MCR, 0x00);
  serial.writeRegister(RBR_THR, 0x41);
  assert.equal(sent, [0x41]);
  assert.is(serial.readRegister(MSR) & 0xf0, 0xb0); // back to a connected console
});

test('MSR delta bits record changes until MSR is read', () => {
  const { serial } = makeSerial();
  serial.writeRegister(MCR, 0x10); // loopback, all outputs off: CTS, DSR, DCD drop
  assert.is(serial.readRegister(MSR), 0x0b); // DCTS | DDSR | DDCD, status bits all clear
  assert.is(serial.readRegister(MSR), 0x00); // the read cleared the deltas
  serial.writeRegister(MCR, 0x14); // OUT1 on: RI rises (TERI is only for its trailing edge)
  assert.is(serial.readRegister(MSR), 0x40);
  serial.writeRegister(MCR, 0x11); // OUT1 off, DTR on: RI falls, DSR rises
  assert.is(serial.readRegister(MSR), 0x26); // DSR | TERI | DDSR
  serial.writeRegister(MCR, 0x01); // leave loopback: CTS, DCD on, DSR stays on
  assert.is(serial.readRegister(MSR), 0xb9); // DCD | DSR | CTS | DDCD | DCTS
});

test('modem status interrupt', () => {
  const { serial, line } = makeSerial();
  serial.writeRegister(IER, 0x08);
  assert.is(line.count, 0);
  serial.writeRegister(MCR, 0x10);
  assert.is(line.count, 1);
  assert.is(serial.readRegister(IIR), 0x00); // modem status
  serial.readRegister(MSR);
  assert.is(serial.readRegister(IIR), 0x01);
});

test('interrupt priorities: line status > received data > THR empty > modem status', () => {
  const { serial, line } = makeSerial();
  serial.writeRegister(MCR, 0x10); // loopback (FIFOs off: a one-byte receiver); deltas pending
  serial.writeRegister(IER, 0x0f);
  assert.is(line.count, 1); // THR empty and modem status became pending together: one edge
  assert.is(serial.readRegister(IIR), 0x02); // THR empty beats modem status
  assert.is(serial.readRegister(IIR), 0x00); // then modem status
  assert.is(serial.readRegister(MSR), 0x0b);
  assert.is(serial.readRegister(IIR), 0x01);
  serial.writeRegister(RBR_THR, 0x31); // received back: data available (and THR empty again)
  assert.is(serial.readRegister(IIR), 0x04);
  serial.writeRegister(RBR_THR, 0x32); // the one-byte receiver is full: overrun
  assert.is(serial.readRegister(IIR), 0x06);
  assert.is(serial.readRegister(LSR), 0x63); // DR | OE | THRE | TEMT
  assert.is(serial.readRegister(LSR), 0x61); // reading LSR cleared OE
  assert.is(serial.readRegister(IIR), 0x04);
  assert.is(serial.readRegister(RBR_THR), 0x31); // the overrun byte was lost
  assert.is(serial.readRegister(IIR), 0x02);
  assert.is(serial.readRegister(IIR), 0x01);
});

test('overrun raises the line status interrupt', () => {
  const { serial, line } = makeSerial();
  serial.writeRegister(MCR, 0x10);
  serial.writeRegister(IER, 0x04);
  serial.writeRegister(RBR_THR, 1);
  assert.is(line.count, 0);
  serial.writeRegister(RBR_THR, 2);
  assert.is(line.count, 1);
});

test('disabling the THR-empty interrupt drops it', () => {
  const { serial } = makeSerial();
  serial.writeRegister(IER, 0x02);
  serial.writeRegister(IER, 0x00);
  assert.is(serial.readRegister(IIR), 0x01);
});

test('scratch register', () => {
  const { serial } = makeSerial();
  serial.writeRegister(SCR, 0xa5);
  assert.is(serial.readRegister(SCR), 0xa5);
});

test('inputReady: false after reset; true once the guest reads LSR or enables the received-data interrupt; a receive-FIFO clear resets it', () => {
  let ready = 0;
  const { serial } = makeSerial({ inputDrained: () => ready++ });
  assert.is(serial.inputReady, false, 'not before the guest looked at the receiver');
  serial.readRegister(LSR);
  assert.is(serial.inputReady, true);
  assert.is(ready, 1, 'becoming ready tells the feeder');
  serial.readRegister(LSR);
  assert.is(ready, 1, 'once');
  serial.writeRegister(FCR, 0x07); // enable + clear: what came before is gone, so wait again
  assert.is(serial.inputReady, false);
  serial.writeRegister(FCR, 0x01); // no clear bit: stays not ready
  assert.is(serial.inputReady, false);
  serial.readRegister(RBR_THR); // a read of RBR alone does not: the guest has not looked at LSR.DR
  assert.is(serial.inputReady, false);
  serial.readRegister(LSR);
  assert.is(serial.inputReady, true);
  assert.is(ready, 2);
  serial.writeRegister(FCR, 0x03);
  serial.writeRegister(IER, 0x01); // received-data interrupt: ready without a read
  assert.is(serial.inputReady, true);
  assert.is(ready, 3);
  assert.is(serial.receiveInterruptEnabled, true);
  serial.writeRegister(IER, 0x00);
  assert.is(serial.inputReady, false);
  assert.is(serial.receiveInterruptEnabled, false);
});

test('inputReady: never in loopback; leaving loopback tells the feeder', () => {
  let ready = 0;
  const { serial } = makeSerial({ inputDrained: () => ready++ });
  serial.writeRegister(MCR, 0x10);
  serial.readRegister(LSR);
  serial.writeRegister(IER, 0x01);
  assert.is(serial.inputReady, false);
  assert.is(ready, 0);
  serial.writeRegister(MCR, 0x03);
  assert.is(serial.inputReady, true);
  assert.is(ready, 1);
});

test('enqueueInput still accepts input whatever inputReady says (the feeder checks it)', () => {
  const { serial } = makeSerial();
  assert.is(serial.inputReady, false);
  assert.is(serial.enqueueInput(Uint8Array.of(1)), 1);
});

test('charactersPerSecond follows the divisor and LCR: 115200/divisor baud over start + data + parity + stop bits', () => {
  const { serial } = makeSerial();
  assert.is(serial.charactersPerSecond, 9600 / 7); // reset: divisor 12, LCR 0 = 5N1
  serial.writeRegister(LCR, 0x83);
  serial.writeRegister(DLL, 1);
  serial.writeRegister(DLM, 0);
  serial.writeRegister(LCR, 0x03); // 8N1
  assert.is(serial.charactersPerSecond, 11520);
  serial.writeRegister(LCR, 0x1f); // 8E2
  assert.is(serial.charactersPerSecond, 115200 / 12);
  serial.writeRegister(LCR, 0x04); // 5 data bits, 1.5 stop bits
  assert.is(serial.charactersPerSecond, 115200 / 7.5);
  serial.writeRegister(LCR, 0x80);
  serial.writeRegister(DLL, 0); // divisor 0 (not allowed by the datasheet) counts as 1
  serial.writeRegister(LCR, 0x03);
  assert.is(serial.charactersPerSecond, 11520);
});

test('accessCount counts every guest register read and write', () => {
  const { serial } = makeSerial();
  const start = serial.accessCount;
  serial.readRegister(LSR);
  serial.writeRegister(RBR_THR, 0x41);
  serial.readRegister(9); // past the registers still counts
  assert.is(serial.accessCount - start, 3);
  serial.enqueueInput(Uint8Array.of(1)); // host input is not a guest access
  assert.is(serial.accessCount - start, 3);
});

test('snapshot() round-trips through JSON into a fresh UART, restored in place without an interrupt', () => {
  const { serial } = makeSerial();
  serial.writeRegister(LCR, 0x83);
  serial.writeRegister(DLL, 1);
  serial.writeRegister(LCR, 0x03);
  serial.writeRegister(FCR, 0x01);
  serial.writeRegister(SCR, 0x77);
  serial.enqueueInput(Uint8Array.of(9, 8));
  const line = { count: 0, trigger() { this.count++; } };
  const copy = new Serial({ interrupt: line });
  copy.restore(JSON.parse(JSON.stringify(serial.snapshot())));
  assert.equal(copy.snapshot(), serial.snapshot());
  assert.is(copy.readRegister(SCR), 0x77);
  assert.is(copy.readRegister(RBR_THR), 9);
  assert.is(copy.readRegister(RBR_THR), 8);
  assert.is(line.count, 0);
});

test('restore() refuses a state snapshot() cannot have produced, and changes nothing', () => {
  const { serial } = makeSerial();
  serial.writeRegister(SCR, 0x55);
  const state = serial.snapshot();
  const before = serial.snapshot();
  const refuse = (bad: unknown, pattern: RegExp) => {
    assert.throws(() => serial.restore(bad as typeof state), (e: unknown) => e instanceof SerialError && pattern.test((e as Error).message));
    assert.equal(serial.snapshot(), before, 'nothing changed');
  };
  refuse({ ...state, scr: 0x11, receive: new Array(65).fill(0) }, /receive has 65 entries, more than 64/);
  refuse({ ...state, scr: 0x11, lcr: 256 }, /lcr is 256, not a byte/);
  refuse({ ...state, divisor: 0x10000 }, /divisor is 65536, not a 16-bit divisor/);
  refuse({ ...state, thrEmptyPending: 1 }, /thrEmptyPending is 1, not true or false/);
  refuse({ ...state, extra: 1 }, /has a field 'extra' that this version does not know/);
});

test.run();

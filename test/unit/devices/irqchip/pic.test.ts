import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Pic, PicError, PicState, picInterruptLine, PIC_CASCADE_IRQ, PIC_ELCR_PORT_COUNT, PIC_IRQ_COUNT,
  PIC_PORT_COUNT,
} from '../../../../src/devices/irqchip/pic';
import { PIC_ELCR_PORT as PIC_ELCR_BASE_PORT, PIC_MASTER_PORT as PIC_MASTER_BASE_PORT, PIC_SLAVE_PORT as PIC_SLAVE_BASE_PORT } from '../../../../src/main/layout';

// Command words written from the 8259A datasheet (231468), not from the model:
//   ICW1 = 0x10 | LTIM 0x08 | SNGL 0x02 | IC4 0x01        (command port)
//   ICW2 = vector base (T7-T3), ICW3 = slave bitmap / slave id, ICW4 = uPM 0x01 | AEOI 0x02 | SFNM 0x10
//   OCW1 = IMR (data port)
//   OCW2 = R/SL/EOI in bits 7:5 | level: 0x20 non-specific EOI, 0x60 | L specific EOI,
//          0xa0 rotate on non-specific EOI, 0xe0 | L rotate on specific EOI, 0xc0 | L set priority
//          (L lowest), 0x80 / 0x00 rotate in automatic EOI mode set / clear
//   OCW3 = 0x08 | ESMM 0x40 | SMM 0x20 | P 0x04 | RR 0x02 | RIS 0x01: 0x0a read IRR, 0x0b read ISR,
//          0x0c poll, 0x68 set special mask, 0x48 reset special mask
// The BIOS/Linux sequence programs the master with 0x11, 0x20, 0x04, 0x01 and
// the slave with 0x11, 0x28, 0x02, 0x01: vectors 0x20-0x27 for IRQs 0-7 and
// 0x28-0x2f for IRQs 8-15, the slave on the master's IR2, 8086 mode, normal EOI.
const MASTER_CMD = 0x20, MASTER_DATA = 0x21, SLAVE_CMD = 0xa0, SLAVE_DATA = 0xa1, ELCR1 = 0x4d0, ELCR2 = 0x4d1;
const EOI = 0x20, READ_IRR = 0x0a, READ_ISR = 0x0b, POLL = 0x0c;
const specificEoi = (level: number) => 0x60 | level;
const picError = (pattern: RegExp) => (e: unknown) => e instanceof PicError && pattern.test(e.message);

function makePic() {
  const edges: boolean[] = [];
  const pic = new Pic({ onIntChange: (asserted) => edges.push(asserted) });
  const device = (port: number) => {
    if (port === MASTER_CMD || port === MASTER_DATA) return { dev: pic.masterPorts, offset: port - MASTER_CMD };
    if (port === SLAVE_CMD || port === SLAVE_DATA) return { dev: pic.slavePorts, offset: port - SLAVE_CMD };
    return { dev: pic.elcrPorts, offset: port - ELCR1 };
  };
  const outb = (port: number, value: number) => {
    const { dev, offset } = device(port);
    dev.writeRegister(offset, value);
  };
  const inb = (port: number) => {
    const { dev, offset } = device(port);
    return dev.readRegister(offset);
  };
  const init = (masterIcw4 = 0x01, slaveIcw4 = 0x01) => {
    outb(MASTER_CMD, 0x11); outb(MASTER_DATA, 0x20); outb(MASTER_DATA, 0x04); outb(MASTER_DATA, masterIcw4);
    outb(SLAVE_CMD, 0x11); outb(SLAVE_DATA, 0x28); outb(SLAVE_DATA, 0x02); outb(SLAVE_DATA, slaveIcw4);
  };
  const reg = (cmd: number, select: number) => {
    outb(cmd, select);
    return inb(cmd);
  };
  const irr = (cmd = MASTER_CMD) => reg(cmd, READ_IRR);
  const isr = (cmd = MASTER_CMD) => reg(cmd, READ_ISR);
  return { pic, edges, outb, inb, init, irr, isr };
}

test('ports and constants', () => {
  assert.is(PIC_MASTER_BASE_PORT, 0x20);
  assert.is(PIC_SLAVE_BASE_PORT, 0xa0);
  assert.is(PIC_PORT_COUNT, 2);
  assert.is(PIC_ELCR_BASE_PORT, 0x4d0);
  assert.is(PIC_ELCR_PORT_COUNT, 2);
  assert.is(PIC_IRQ_COUNT, 16);
  assert.is(PIC_CASCADE_IRQ, 2);
  const { pic } = makePic();
  assert.is(pic.masterPorts.name, 'pic-master');
  assert.is(pic.slavePorts.name, 'pic-slave');
  assert.is(pic.elcrPorts.name, 'pic-elcr');
});

test('Linux/BIOS init: vectors 0x20+irq on the master, 0x28+irq-8 on the slave; IMR 0 after ICW1', () => {
  const { pic, outb, inb, init } = makePic();
  outb(MASTER_DATA, 0xff);
  outb(SLAVE_DATA, 0xff);
  init();
  assert.is(inb(MASTER_DATA), 0x00); // ICW1 clears the IMR
  assert.is(inb(SLAVE_DATA), 0x00);
  pic.pulse(1);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x21);
  outb(MASTER_CMD, EOI);
  pic.pulse(12);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x2c); // 0x28 + (12 - 8)
  assert.not.ok(pic.intAsserted);
  // OCW1 after initialization sets the IMR
  outb(MASTER_DATA, 0xb8);
  outb(SLAVE_DATA, 0x8f);
  assert.is(inb(MASTER_DATA), 0xb8);
  assert.is(inb(SLAVE_DATA), 0x8f);
});

test('ICW2 ignores its low three bits; SNGL skips ICW3; without IC4 there is no ICW4', () => {
  const { pic, outb, inb } = makePic();
  // single, ICW4: ICW1 0x13, ICW2 0x47 (base 0x40), ICW4 0x01, then OCW1 0x01 (mask IRQ 0)
  outb(MASTER_CMD, 0x13);
  outb(MASTER_DATA, 0x47);
  outb(MASTER_DATA, 0x01);
  outb(MASTER_DATA, 0x01);
  assert.is(inb(MASTER_DATA), 0x01);
  pic.pulse(3);
  assert.is(pic.acknowledge(), 0x43);
  // cascade, no ICW4: ICW1 0x10, ICW2 0x50, ICW3 0x04, then OCW1 0x80 (mask IRQ 7)
  outb(MASTER_CMD, 0x10);
  outb(MASTER_DATA, 0x50);
  outb(MASTER_DATA, 0x04);
  outb(MASTER_DATA, 0x80);
  assert.is(inb(MASTER_DATA), 0x80);
  pic.pulse(6);
  assert.is(pic.acknowledge(), 0x56);
});

test('ICW1 drops latched edge requests and what was in service; a line held high must fall and rise again', () => {
  const { pic, outb, init, irr, isr } = makePic();
  init();
  pic.pulse(4);
  assert.is(pic.acknowledge(), 0x24);
  pic.setIrqLine(3, true); // held high
  assert.is(irr(), 0x08);
  assert.is(isr(), 0x10);
  init();
  assert.is(irr(), 0x00);
  assert.is(isr(), 0x00);
  assert.not.ok(pic.intAsserted);
  pic.setIrqLine(3, true); // still high: no edge
  assert.is(irr(), 0x00);
  pic.setIrqLine(3, false);
  pic.setIrqLine(3, true);
  assert.is(irr(), 0x08);
  assert.is(pic.acknowledge(), 0x23);
  // a second ICW1 in the middle of a sequence starts over
  outb(MASTER_CMD, 0x11);
  outb(MASTER_DATA, 0x60);
  outb(MASTER_CMD, 0x11);
  outb(MASTER_DATA, 0x30);
  outb(MASTER_DATA, 0x04);
  outb(MASTER_DATA, 0x01);
  pic.pulse(5);
  assert.is(pic.acknowledge(), 0x35);
});

test('masking: a pulse while masked stays in IRR and is delivered on unmask; IRQ 2 masks the whole slave', () => {
  const { pic, edges, outb, init, irr, isr } = makePic();
  init();
  outb(MASTER_DATA, 0x08); // mask IRQ 3
  pic.pulse(3);
  assert.not.ok(pic.intAsserted);
  assert.is(irr(), 0x08);
  assert.equal(edges, []);
  outb(MASTER_DATA, 0x00);
  assert.ok(pic.intAsserted);
  assert.equal(edges, [true]);
  assert.is(pic.acknowledge(), 0x23);
  assert.is(irr(), 0x00);
  assert.is(isr(), 0x08);
  outb(MASTER_CMD, EOI);
  assert.is(isr(), 0x00);

  outb(MASTER_DATA, 0x04); // mask the cascade
  pic.pulse(10);
  assert.not.ok(pic.intAsserted);
  assert.is(irr(SLAVE_CMD), 0x04);
  outb(MASTER_DATA, 0x00);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x2a);
  assert.is(isr(), 0x04);
  assert.is(isr(SLAVE_CMD), 0x04);

  // the slave's own IMR too
  outb(SLAVE_CMD, EOI);
  outb(MASTER_CMD, EOI);
  outb(SLAVE_DATA, 0x80); // mask IRQ 15
  pic.pulse(15);
  assert.not.ok(pic.intAsserted);
  outb(SLAVE_DATA, 0x00);
  assert.is(pic.acknowledge(), 0x2f);
});

test('edge triggering: a line held high is one request; a new edge while in service waits for the EOI', () => {
  const { pic, outb, init, irr, isr } = makePic();
  init();
  pic.setIrqLine(4, true);
  assert.is(pic.acknowledge(), 0x24);
  outb(MASTER_CMD, EOI);
  assert.not.ok(pic.intAsserted); // still high, but no new edge
  assert.is(irr(), 0x00);
  pic.setIrqLine(4, false);
  pic.setIrqLine(4, true);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x24);
  pic.setIrqLine(4, false);
  pic.pulse(4); // in service: latched, blocked by its own ISR bit
  assert.is(irr(), 0x10);
  assert.is(isr(), 0x10);
  assert.not.ok(pic.intAsserted);
  outb(MASTER_CMD, EOI);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x24);
});

test('level triggering through the ELCR: IRR follows the line, the request repeats after EOI while high', () => {
  const { pic, outb, inb, init, irr, isr } = makePic();
  init();
  outb(ELCR1, 0xff);
  outb(ELCR2, 0xff);
  assert.is(inb(ELCR1), 0xf8); // IRQs 0, 1, 2 are always edge
  assert.is(inb(ELCR2), 0xde); // IRQs 8 and 13 are always edge
  outb(ELCR1, 0x20); // IRQ 5 level
  outb(ELCR2, 0x04); // IRQ 10 level
  assert.is(inb(ELCR1), 0x20);
  assert.is(inb(ELCR2), 0x04);

  pic.setIrqLine(5, true);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x25);
  assert.is(irr(), 0x20); // not cleared by the INTA: the line is still high
  assert.is(isr(), 0x20);
  assert.not.ok(pic.intAsserted);
  outb(MASTER_CMD, EOI);
  assert.ok(pic.intAsserted); // still high: requested again
  pic.setIrqLine(5, false);
  assert.is(irr(), 0x00);
  assert.not.ok(pic.intAsserted);
  pic.pulse(5); // a pulse on a level input leaves nothing
  assert.is(irr(), 0x00);
  assert.not.ok(pic.intAsserted);

  pic.setIrqLine(10, true);
  assert.is(irr(SLAVE_CMD), 0x04);
  assert.is(pic.acknowledge(), 0x2a);
  outb(SLAVE_CMD, EOI);
  outb(MASTER_CMD, EOI);
  assert.ok(pic.intAsserted); // line still high
  pic.setIrqLine(10, false);
  assert.is(irr(SLAVE_CMD), 0x00);
  assert.not.ok(pic.intAsserted);
  // switching an input to level shows its line at once
  pic.setIrqLine(6, true); // edge: latched
  pic.setIrqLine(6, false);
  assert.is(irr(), 0x40);
  outb(ELCR1, 0x60); // now level, line low
  assert.is(irr(), 0x00);
  pic.setIrqLine(7, true);
  outb(ELCR1, 0xe0);
  assert.is(irr(), 0x80);
});

test('level triggering through LTIM in ICW1 applies to every input', () => {
  const { pic, outb, irr } = makePic();
  outb(MASTER_CMD, 0x19); // LTIM | IC4
  outb(MASTER_DATA, 0x20);
  outb(MASTER_DATA, 0x04);
  outb(MASTER_DATA, 0x01);
  pic.setIrqLine(1, true);
  assert.is(irr(), 0x02);
  assert.is(pic.acknowledge(), 0x21);
  outb(MASTER_CMD, EOI);
  assert.ok(pic.intAsserted);
  pic.setIrqLine(1, false);
  assert.is(irr(), 0x00);
  assert.not.ok(pic.intAsserted);
});

test('priorities: IRQ 0 beats 4; the slave through IR2 beats master IRQ 3+; IRQ 1 beats the slave; nesting', () => {
  const { pic, outb, init, isr } = makePic();
  init();
  pic.pulse(4);
  pic.pulse(0);
  assert.is(pic.acknowledge(), 0x20);
  assert.not.ok(pic.intAsserted); // IRQ 4 is below IRQ 0 in service
  outb(MASTER_CMD, EOI);
  assert.is(pic.acknowledge(), 0x24);
  outb(MASTER_CMD, EOI);

  pic.pulse(3);
  pic.pulse(9);
  assert.is(pic.acknowledge(), 0x29);
  assert.not.ok(pic.intAsserted); // IRQ 3 waits for the cascade's EOI
  outb(SLAVE_CMD, EOI);
  assert.not.ok(pic.intAsserted);
  outb(MASTER_CMD, EOI);
  assert.is(pic.acknowledge(), 0x23);
  outb(MASTER_CMD, EOI);

  pic.pulse(8);
  pic.pulse(1);
  assert.is(pic.acknowledge(), 0x21);
  outb(MASTER_CMD, EOI);
  assert.is(pic.acknowledge(), 0x28);
  outb(SLAVE_CMD, EOI);
  outb(MASTER_CMD, EOI);

  // on the slave, IRQ 8 beats IRQ 15
  pic.pulse(15);
  pic.pulse(8);
  assert.is(pic.acknowledge(), 0x28);
  outb(SLAVE_CMD, EOI);
  outb(MASTER_CMD, EOI);
  assert.is(pic.acknowledge(), 0x2f);
  outb(SLAVE_CMD, EOI);
  outb(MASTER_CMD, EOI);

  // a higher request nests over one in service
  pic.pulse(6);
  assert.is(pic.acknowledge(), 0x26);
  pic.pulse(1);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x21);
  assert.is(isr(), 0x42);
});

test('EOI: non-specific ends the highest-priority level in service, specific ends the level named', () => {
  const { pic, outb, init, isr } = makePic();
  init();
  pic.pulse(4);
  assert.is(pic.acknowledge(), 0x24);
  pic.pulse(1);
  assert.is(pic.acknowledge(), 0x21);
  assert.is(isr(), 0x12);
  outb(MASTER_CMD, EOI);
  assert.is(isr(), 0x10); // IRQ 1 ended
  outb(MASTER_CMD, EOI);
  assert.is(isr(), 0x00);
  outb(MASTER_CMD, EOI); // nothing in service: nothing happens
  assert.is(isr(), 0x00);

  pic.pulse(4);
  pic.acknowledge();
  pic.pulse(1);
  pic.acknowledge();
  outb(MASTER_CMD, specificEoi(4));
  assert.is(isr(), 0x02); // IRQ 4 ended, IRQ 1 still in service
  outb(MASTER_CMD, specificEoi(1));
  assert.is(isr(), 0x00);
  outb(MASTER_CMD, 0x40); // OCW2 no-op
  assert.is(isr(), 0x00);
});

test('automatic EOI: nothing stays in service, and a rotate in AEOI mode makes the served level lowest', () => {
  const { pic, outb, init, irr, isr } = makePic();
  init(0x03, 0x03); // uPM | AEOI
  pic.pulse(5);
  assert.is(pic.acknowledge(), 0x25);
  assert.is(isr(), 0x00);
  assert.is(irr(), 0x00);
  pic.pulse(5);
  assert.ok(pic.intAsserted); // no EOI needed
  assert.is(pic.acknowledge(), 0x25);
  // two slave requests: the second follows without any EOI, through the cascade
  pic.pulse(9);
  pic.pulse(11);
  assert.is(pic.acknowledge(), 0x29);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x2b);
  assert.not.ok(pic.intAsserted);
  assert.is(isr(SLAVE_CMD), 0x00);

  outb(MASTER_CMD, 0x80); // rotate in AEOI mode: set
  pic.pulse(0);
  assert.is(pic.acknowledge(), 0x20); // IRQ 0 becomes the lowest: order 1, 2, ..., 7, 0
  pic.pulse(0);
  pic.pulse(3);
  assert.is(pic.acknowledge(), 0x23);
  assert.is(pic.acknowledge(), 0x20);
  outb(MASTER_CMD, 0x00); // rotate in AEOI mode: clear; IRQ 1 stays the highest
  pic.pulse(4);
  assert.is(pic.acknowledge(), 0x24); // no rotation: had it rotated, IRQ 5 would now be the highest
  pic.pulse(4);
  pic.pulse(5);
  assert.is(pic.acknowledge(), 0x24);
  assert.is(pic.acknowledge(), 0x25);
});

test('rotation: rotate on non-specific EOI, rotate on specific EOI, set priority', () => {
  const { pic, outb, init, isr } = makePic();
  init();
  pic.pulse(3);
  assert.is(pic.acknowledge(), 0x23);
  outb(MASTER_CMD, 0xa0); // rotate on non-specific EOI: IRQ 3 lowest, IRQ 4 highest
  assert.is(isr(), 0x00);
  pic.pulse(1);
  pic.pulse(5);
  assert.is(pic.acknowledge(), 0x25); // order 4, 5, 6, 7, 0, 1, 2, 3
  pic.pulse(0);
  // with IRQ 5 in service, IRQ 0 (lower now) waits; a non-specific EOI ends IRQ 5 (highest in service)
  assert.not.ok(pic.intAsserted);
  outb(MASTER_CMD, EOI);
  assert.is(isr(), 0x00);
  assert.is(pic.acknowledge(), 0x20);
  outb(MASTER_CMD, EOI);
  assert.is(pic.acknowledge(), 0x21);
  outb(MASTER_CMD, EOI);

  outb(MASTER_CMD, 0xc6); // set priority: IRQ 6 lowest, IRQ 7 highest
  pic.pulse(0);
  pic.pulse(7);
  assert.is(pic.acknowledge(), 0x27);
  outb(MASTER_CMD, 0xe7); // rotate on specific EOI of IRQ 7: IRQ 7 lowest, IRQ 0 highest
  assert.is(isr(), 0x00);
  assert.is(pic.acknowledge(), 0x20);
  outb(MASTER_CMD, specificEoi(0));
  pic.pulse(7);
  pic.pulse(6);
  assert.is(pic.acknowledge(), 0x26);
});

test('OCW3 selects IRR or ISR for the command port until changed; the data port reads the IMR', () => {
  const { pic, outb, inb, init } = makePic();
  init();
  outb(MASTER_DATA, 0x01);
  pic.pulse(0); // masked: stays in IRR
  pic.pulse(3);
  assert.is(inb(MASTER_CMD), 0x09); // IRR after initialization
  assert.is(pic.acknowledge(), 0x23);
  outb(MASTER_CMD, READ_ISR);
  assert.is(inb(MASTER_CMD), 0x08);
  assert.is(inb(MASTER_CMD), 0x08); // sticky
  outb(MASTER_CMD, 0x08); // OCW3 without RR: selection unchanged
  assert.is(inb(MASTER_CMD), 0x08);
  assert.is(inb(MASTER_DATA), 0x01);
  outb(MASTER_CMD, READ_IRR);
  assert.is(inb(MASTER_CMD), 0x01);
  assert.is(inb(MASTER_DATA), 0x01);
});

test('poll: the next read is the poll word and acknowledges; then reads are normal again', () => {
  const { pic, outb, inb, init, isr } = makePic();
  init();
  outb(MASTER_CMD, POLL);
  assert.is(inb(MASTER_CMD), 0x00); // nothing pending: I = 0
  assert.is(inb(MASTER_DATA), 0x00); // IMR again

  pic.pulse(5);
  pic.pulse(6);
  outb(MASTER_CMD, POLL);
  assert.is(inb(MASTER_CMD), 0x85); // I | level 5
  assert.is(isr(), 0x20);
  assert.not.ok(pic.intAsserted);
  assert.is(inb(MASTER_CMD), 0x20); // ISR selected by isr() above: a normal read
  outb(MASTER_CMD, EOI);
  outb(MASTER_CMD, POLL);
  assert.is(inb(MASTER_DATA), 0x86); // the data port answers a poll too
  outb(MASTER_CMD, EOI);

  // a slave request polls as level 2 on the master, then as its own level on the slave
  pic.pulse(11);
  outb(MASTER_CMD, POLL);
  assert.is(inb(MASTER_CMD), 0x82);
  outb(SLAVE_CMD, POLL);
  assert.is(inb(SLAVE_CMD), 0x83);
  assert.is(isr(), 0x04);
  assert.is(isr(SLAVE_CMD), 0x08);
});

test('special mask mode: masking the level in service lets lower levels in', () => {
  const { pic, outb, init } = makePic();
  init();
  pic.pulse(1);
  assert.is(pic.acknowledge(), 0x21);
  outb(MASTER_DATA, 0x02); // mask IRQ 1 (in service)
  pic.pulse(4);
  assert.not.ok(pic.intAsserted); // fully nested: IRQ 1 in service holds IRQ 4
  outb(MASTER_CMD, 0x68); // set special mask mode
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x24);
  outb(MASTER_CMD, specificEoi(4));
  outb(MASTER_CMD, 0x48); // reset special mask mode
  pic.pulse(4);
  assert.not.ok(pic.intAsserted);
});

test('special fully nested mode: a higher slave request nests over the cascade in service', () => {
  for (const [icw4, nests] of [[0x11, true], [0x01, false]] as const) {
    const { pic, init } = makePic();
    init(icw4);
    pic.pulse(12);
    assert.is(pic.acknowledge(), 0x2c);
    pic.pulse(9);
    assert.is(pic.intAsserted, nests);
    if (nests) assert.is(pic.acknowledge(), 0x29);
  }
});

test('spurious: with nothing to deliver the INTA answers the master IR7 vector 0x27 and puts nothing in service', () => {
  const { pic, outb, init, isr } = makePic();
  init();
  assert.is(pic.acknowledge(), 0x27);
  assert.is(isr(), 0x00);
  pic.pulse(5);
  assert.ok(pic.intAsserted);
  outb(MASTER_DATA, 0x20); // masked before the INTA
  assert.not.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x27);
  assert.is(isr(), 0x00);
  outb(MASTER_DATA, 0x00);
  assert.is(pic.acknowledge(), 0x25); // still latched, delivered now
  outb(MASTER_CMD, EOI);

  // a slave request masked on the slave before the INTA: IR2's request goes with it
  pic.pulse(11);
  assert.ok(pic.intAsserted);
  outb(SLAVE_DATA, 0x08);
  assert.not.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x27);
  assert.is(isr(), 0x00);
  assert.is(isr(SLAVE_CMD), 0x00);
  outb(SLAVE_DATA, 0x00);
  assert.is(pic.acknowledge(), 0x2b);

  // a level slave request withdrawn before the INTA
  outb(SLAVE_CMD, EOI);
  outb(MASTER_CMD, EOI);
  outb(ELCR2, 0x04); // IRQ 10 level
  pic.setIrqLine(10, true);
  assert.ok(pic.intAsserted);
  pic.setIrqLine(10, false);
  assert.not.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x27);
  assert.is(isr(), 0x00);
});

test('INT output: onIntChange is called once per change', () => {
  const { pic, edges, outb, init } = makePic();
  init();
  assert.equal(edges, []);
  pic.pulse(1);
  assert.equal(edges, [true]);
  pic.pulse(3); // lower, pending: INT already high
  pic.pulse(1); // IRR bit 1 already set: the same request
  assert.equal(edges, [true]);
  assert.is(pic.acknowledge(), 0x21);
  assert.equal(edges, [true, false]); // IRQ 3 waits behind IRQ 1 in service
  outb(MASTER_CMD, EOI);
  assert.equal(edges, [true, false, true]);
  outb(MASTER_DATA, 0x08); // mask IRQ 3
  assert.equal(edges, [true, false, true, false]);
  outb(MASTER_DATA, 0x08); // the same mask again: no change
  outb(MASTER_DATA, 0x00);
  assert.equal(edges, [true, false, true, false, true]);
  assert.is(pic.acknowledge(), 0x23);
  assert.equal(edges, [true, false, true, false, true, false]);
  outb(MASTER_CMD, EOI); // nothing left
  assert.is(edges.length, 6);
  assert.not.ok(pic.intAsserted);
  // a slave interrupt: one rise and one fall, the cascade included
  pic.pulse(14);
  assert.is(pic.acknowledge(), 0x2e);
  outb(SLAVE_CMD, EOI);
  outb(MASTER_CMD, EOI);
  assert.equal(edges.slice(6), [true, false]);
  // automatic EOI with two requests: INT stays high across the first INTA
  const aeoi = makePic();
  aeoi.init(0x03, 0x03);
  aeoi.pic.pulse(4);
  aeoi.pic.pulse(3);
  assert.is(aeoi.pic.acknowledge(), 0x23);
  assert.is(aeoi.pic.acknowledge(), 0x24);
  assert.equal(aeoi.edges, [true, false]);
});

test('snapshot() is plain JSON; restore() on a fresh Pic restores the behaviour and calls nothing', () => {
  const { pic, outb, init } = makePic();
  init();
  outb(ELCR1, 0x20);
  outb(MASTER_CMD, 0xc3); // IRQ 3 lowest, IRQ 4 highest
  pic.pulse(6);
  assert.is(pic.acknowledge(), 0x26);
  pic.setIrqLine(5, true); // level; order 4, 5, 6: IRQ 5 outranks IRQ 6 and nests
  pic.setIrqLine(13, true); // slave request, held behind IRQ 6 (IR2 comes after it)
  outb(MASTER_DATA, 0x80);
  outb(MASTER_CMD, READ_ISR);
  outb(SLAVE_CMD, 0x11); // the slave is mid-initialization, waiting for ICW2
  const state = pic.snapshot();
  const json = JSON.parse(JSON.stringify(state)) as PicState;
  assert.equal(json, state);

  const edges: boolean[] = [];
  const restored = new Pic({ onIntChange: (a) => edges.push(a) });
  restored.restore(json);
  assert.equal(restored.snapshot(), state);
  assert.equal(edges, []);
  assert.is(restored.intAsserted, pic.intAsserted);
  assert.ok(restored.intAsserted); // IRQ 5 outranks IRQ 6 in service
  assert.is(restored.elcrPorts.readRegister(0), 0x20);
  assert.is(restored.masterPorts.readRegister(1), 0x80);
  assert.is(restored.masterPorts.readRegister(0), 0x40); // ISR selected
  assert.is(restored.acknowledge(), 0x25);
  assert.is(restored.masterPorts.readRegister(0), 0x60);
  restored.setIrqLine(5, false);
  restored.slavePorts.writeRegister(1, 0x70); // ICW2
  restored.slavePorts.writeRegister(1, 0x02); // ICW3
  restored.slavePorts.writeRegister(1, 0x01); // ICW4
  restored.masterPorts.writeRegister(0, EOI);
  restored.masterPorts.writeRegister(0, EOI);
  restored.pulse(9);
  assert.is(restored.acknowledge(), 0x71);

});

test('restore() refuses a bad state in one line and changes nothing', () => {
  const { pic, init, outb } = makePic();
  init();
  outb(ELCR1, 0x20);
  pic.pulse(6);
  const state = pic.snapshot();
  const bad = (mutate: (s: PicState) => void, pattern: RegExp) => {
    const copy = JSON.parse(JSON.stringify(state)) as PicState;
    mutate(copy);
    assert.throws(() => pic.restore(copy), (e: unknown) => picError(pattern)(e) && !(e as Error).message.includes('\n'));
  };
  bad((s) => { s.master.irr = 256; }, /cannot restore PIC state: master\.irr is 256, not a byte/);
  bad((s) => { s.slave.highestPriority = 8; }, /slave\.highestPriority is 8, not a level 0\.\.7/);
  bad((s) => { (s.slave as { initStep: string }).initStep = 'icw5'; }, /slave\.initStep is "icw5", not one of ready, icw2, icw3, icw4/);
  bad((s) => { delete (s as Partial<PicState>).slave; }, /slave is missing, not an object/);
  // Stricter than fromState was: booleans must be booleans, masked bits must be clear.
  bad((s) => { (s.master as { autoEoi: unknown }).autoEoi = 1; }, /master\.autoEoi is 1, not true or false/);
  bad((s) => { s.master.vectorBase = 0x21; }, /master\.vectorBase is 33, not a vector base/);
  bad((s) => { s.master.elcr = 0x01; }, /master\.elcr is 1, not an ELCR byte within 0xf8/);
  bad((s) => { s.slave.elcr = 0x01; }, /slave\.elcr is 1, not an ELCR byte within 0xde/);
  bad((s) => { (s as unknown as Record<string, unknown>).third = {}; }, /field 'third'/);
  // The master is fine and different, the slave is not: the master is not applied either.
  bad((s) => { s.master.imr = 0xff; s.slave.isr = -1; }, /slave\.isr is -1, not a byte/);
  assert.throws(() => pic.restore(null as unknown as PicState), picError(/the state is null, not an object/));
  assert.equal(pic.snapshot(), state);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x26);
});

test('restore() is in place: the same Pic, still reporting INT changes through onIntChange', () => {
  const { pic, init, outb, edges } = makePic();
  init();
  const quiet = pic.snapshot();
  pic.pulse(3);
  assert.equal(edges, [true]);
  const pending = pic.snapshot();
  pic.restore(quiet); // INT was high, is low now: restore itself reports nothing (read intAsserted)
  assert.equal(edges, [true]);
  assert.not.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x27); // nothing requested: spurious
  pic.pulse(4); // still wired: the next change goes out
  assert.equal(edges, [true, true]);
  assert.is(pic.acknowledge(), 0x24);
  assert.equal(edges, [true, true, false]);
  pic.restore(pending);
  assert.ok(pic.intAsserted);
  assert.is(pic.acknowledge(), 0x23);
  // The rise restore() made was not reported, so the fall is reported after another fall:
  // whoever restores a Pic sets INT's receiver from intAsserted (as the vCPU's own state does).
  assert.equal(edges, [true, true, false, false]);
  outb(MASTER_CMD, EOI);
});

test('setIrqLine, pulse and picInterruptLine reject IRQ 2 and numbers outside 0..15', () => {
  const { pic, init } = makePic();
  init();
  assert.throws(() => pic.setIrqLine(2, true), picError(/PIC IRQ 2: it is the master's cascade input/));
  assert.throws(() => pic.setIrqLine(16, true), picError(/PIC IRQ 16: the PICs have IRQs 0\.\.15/));
  assert.throws(() => pic.pulse(-1), picError(/PIC IRQ -1/));
  assert.throws(() => pic.setIrqLine(1.5, true), picError(/PIC IRQ 1\.5/));
  assert.throws(() => picInterruptLine(pic, 2), picError(/PIC IRQ 2/));
  const line = picInterruptLine(pic, 4);
  line.trigger();
  assert.is(pic.acknowledge(), 0x24);
});

test.run();

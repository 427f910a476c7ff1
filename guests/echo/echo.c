/*
 * echo: the host-to-guest direction of COM1. The guest enables the UART's
 * "received data available" interrupt (IRQ4 through the 8259 PIC), prints
 * "echo: ready", and then sleeps in hlt; each interrupt drains the receive
 * FIFO. Every line it receives comes back upper-cased as "echo: <LINE>"; the
 * line "quit" resets the machine. Between lines it is an idle guest: a vCPU
 * halted in KVM with interrupts on, which is what the idle and signal tests
 * need.
 */
#include "guest.h"

#define PIC1_COMMAND 0x20
#define PIC1_DATA 0x21
#define PIC2_COMMAND 0xa0
#define PIC2_DATA 0xa1
#define PIC_ICW1_INIT_ICW4 0x11	/* ICW1: edge triggered, cascade, ICW4 follows */
#define PIC_ICW4_8086 0x01
#define PIC_EOI 0x20		/* OCW2: non-specific end of interrupt */
#define PIC1_VECTOR_BASE 0x20
#define PIC2_VECTOR_BASE 0x28
#define COM1_IRQ 4
#define COM1_VECTOR (PIC1_VECTOR_BASE + COM1_IRQ)

#define UART_RBR 0		/* receive buffer register (read) */
#define UART_FCR 2		/* FIFO control register (write) */
#define UART_FCR_ENABLE_CLEAR 0x07	/* FIFOs on, both cleared */
#define UART_IER_RDI 0x01	/* IER bit 0: received data available interrupt */
#define UART_LSR_DR 0x01	/* LSR bit 0: data ready */
#define UART_MCR_OUT2 0x08	/* MCR bit 3: routes the UART interrupt to the PIC on a PC */
#define UART_MCR_DTR_RTS 0x03

#define LAPIC_SVR 0x0f0
#define LAPIC_LVT0 0x350
#define LAPIC_LVT1 0x360
#define LVT_EXTINT 0x700
#define LVT_NMI 0x400

#define LINE_MAX 128
#define RING_SIZE 256

static volatile uint8_t ring[RING_SIZE];
static volatile uint32_t ring_head, ring_tail;

static void receive_handler(struct isr_frame *frame)
{
	(void)frame;
	while (inb(COM1_BASE + UART_LSR) & UART_LSR_DR) {
		uint8_t byte = inb(COM1_BASE + UART_RBR);
		if (ring_head - ring_tail < RING_SIZE)
			ring[ring_head++ % RING_SIZE] = byte;
	}
	(void)inb(COM1_BASE + UART_IIR);
	outb(PIC1_COMMAND, PIC_EOI);
}

static void pic_init(void)
{
	outb(PIC1_COMMAND, PIC_ICW1_INIT_ICW4);
	outb(PIC2_COMMAND, PIC_ICW1_INIT_ICW4);
	outb(PIC1_DATA, PIC1_VECTOR_BASE);
	outb(PIC2_DATA, PIC2_VECTOR_BASE);
	outb(PIC1_DATA, 1 << 2);
	outb(PIC2_DATA, 2);
	outb(PIC1_DATA, PIC_ICW4_8086);
	outb(PIC2_DATA, PIC_ICW4_8086);
	outb(PIC1_DATA, (uint8_t)~(1 << COM1_IRQ));
	outb(PIC2_DATA, 0xff);
}

/* Sleeps until the interrupt handler has queued a byte, then returns it. */
static uint8_t next_byte(void)
{
	for (;;) {
		cli();
		if (ring_tail != ring_head) {
			uint8_t byte = ring[ring_tail++ % RING_SIZE];
			sti();
			return byte;
		}
		sti_hlt();
	}
}

static int is_quit(const char *line, size_t length)
{
	return length == 4 && line[0] == 'Q' && line[1] == 'U' && line[2] == 'I' && line[3] == 'T'; /* stored upper-cased */
}

void guest_main(void)
{
	char line[LINE_MAX];
	size_t length = 0;

	cli();
	set_interrupt_handler(COM1_VECTOR, receive_handler);
	mmio_write32(LAPIC_BASE + LAPIC_SVR, 0x1ff);
	mmio_write32(LAPIC_BASE + LAPIC_LVT0, LVT_EXTINT);
	mmio_write32(LAPIC_BASE + LAPIC_LVT1, LVT_NMI);
	pic_init();
	outb(COM1_BASE + UART_FCR, UART_FCR_ENABLE_CLEAR);
	outb(COM1_BASE + UART_MCR, UART_MCR_DTR_RTS | UART_MCR_OUT2);
	outb(COM1_BASE + UART_IER, UART_IER_RDI);
	printf("echo: ready\n");
	sti();

	for (;;) {
		uint8_t byte = next_byte();
		if (byte == '\r' || byte == '\n') {
			if (is_quit(line, length))
				break;
			if (length > 0) {
				line[length] = 0;
				printf("echo: %s\n", line);
			}
			length = 0;
		} else if (length < LINE_MAX - 1) {
			line[length++] = (byte >= 'a' && byte <= 'z') ? (char)(byte - 'a' + 'A') : (char)byte;
		}
	}
	cli();
	printf("echo: bye\n");
}

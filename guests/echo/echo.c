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
#include "interrupts.h"

#define COM1_IRQ 4
#define COM1_VECTOR (PIC1_VECTOR_BASE + COM1_IRQ)

#define UART_RBR 0		/* receive buffer register (read) */
#define UART_FCR 2		/* FIFO control register (write) */
#define UART_FCR_ENABLE_CLEAR 0x07	/* FIFOs on, both cleared */
#define UART_IER_RDI 0x01	/* IER bit 0: received data available interrupt */
#define UART_LSR_DR 0x01	/* LSR bit 0: data ready */
#define UART_MCR_OUT2 0x08	/* MCR bit 3: routes the UART interrupt to the PIC on a PC */
#define UART_MCR_DTR_RTS 0x03

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
	pic_eoi();
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
	lapic_virtual_wire();
	pic_init((uint8_t)~(1 << COM1_IRQ), PIC_MASK_ALL); /* mask all but IRQ4 */
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

/*
 * The C half of the guest runtime: COM1 output, formatting, the IDT and its
 * default handlers, and the reset. Called from start.S.
 */
#include "guest.h"

/* Bounds of every wait on a device: a missing device must not hang a guest. */
#define SERIAL_POLL_LIMIT 100000

/* ---- Memory (gcc may emit calls to these) ---- */
void *memset(void *dst, int c, size_t n)
{
	void *d = dst;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

/* ---- COM1 ---- */
static void serial_init(void)
{
	outb(COM1_BASE + UART_IER, 0x00);	/* no interrupts */
	outb(COM1_BASE + UART_LCR, 0x80);	/* DLAB on */
	outb(COM1_BASE + 0, 0x01);		/* divisor 1: 115200 baud */
	outb(COM1_BASE + 1, 0x00);
	outb(COM1_BASE + UART_LCR, 0x03);	/* DLAB off, 8N1 */
	outb(COM1_BASE + UART_MCR, 0x03);	/* DTR | RTS */
}

void serial_putc(char c)
{
	for (int i = 0; i < SERIAL_POLL_LIMIT; i++)
		if (inb(COM1_BASE + UART_LSR) & UART_LSR_THRE)
			break;
	outb(COM1_BASE + UART_THR, (uint8_t)c);
}

void serial_write(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		serial_putc(s[i]);
}

void puts_nonl(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

/* ---- printf subset: %d %i %u %x %X %p %s %c %%, flags '0' and '-', a width, l/ll/z/h/hh ---- */
static void put_padded(const char *s, int len, int width, char pad, int left)
{
	if (!left)
		for (int i = len; i < width; i++)
			serial_putc(pad);
	for (int i = 0; i < len; i++)
		serial_putc(s[i]);
	if (left)
		for (int i = len; i < width; i++)
			serial_putc(' ');
}

static int format_unsigned(char *buf, uint64_t v, unsigned base, int upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v);
	for (int i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

int vprintf(const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			serial_putc(*fmt);
			continue;
		}
		fmt++;
		char pad = ' ';
		int left = 0, width = 0, size = 0; /* size: 0 int, 1 long, 2 long long */
		for (;; fmt++) {
			if (*fmt == '0')
				pad = '0';
			else if (*fmt == '-')
				left = 1;
			else
				break;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z' || *fmt == 'h') {
			if (*fmt == 'l' || *fmt == 'z')
				size++;
			fmt++;
		}
		char buf[24];
		int len;
		uint64_t u;
		switch (*fmt) {
		case 'd':
		case 'i': {
			int64_t v = size ? va_arg(ap, int64_t) : va_arg(ap, int);
			int neg = v < 0;
			buf[0] = '-';
			len = neg + format_unsigned(buf + neg, neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 10, 0);
			put_padded(buf, len, width, pad, left);
			break;
		}
		case 'u':
		case 'x':
		case 'X':
			u = size ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
			len = format_unsigned(buf, u, *fmt == 'u' ? 10 : 16, *fmt == 'X');
			put_padded(buf, len, width, pad, left);
			break;
		case 'p':
			u = (uint64_t)(uintptr_t)va_arg(ap, void *);
			buf[0] = '0';
			buf[1] = 'x';
			len = 2 + format_unsigned(buf + 2, u, 16, 0);
			put_padded(buf, len, width, pad, left);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			int n = 0;
			while (s[n])
				n++;
			put_padded(s, n, width, ' ', left);
			break;
		}
		case 'c':
			buf[0] = (char)va_arg(ap, int);
			put_padded(buf, 1, width, ' ', left);
			break;
		case '%':
			serial_putc('%');
			break;
		case '\0':
			return 0;
		default:
			serial_putc('%');
			serial_putc(*fmt);
			break;
		}
	}
	return 0;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	return 0;
}

/* ---- IDT ---- */
#define IDT_VECTORS 256
#define IDT_INTERRUPT_GATE 0x8e	/* present, DPL 0, 64-bit interrupt gate */

struct idt_entry {
	uint16_t offset_low;
	uint16_t selector;
	uint8_t ist;
	uint8_t type_attr;
	uint16_t offset_mid;
	uint32_t offset_high;
	uint32_t reserved;
};

extern struct idt_entry idt[IDT_VECTORS];
extern const char isr_stubs[];
static interrupt_handler handlers[IDT_VECTORS];

static void idt_init(void)
{
	for (unsigned v = 0; v < IDT_VECTORS; v++) {
		uint64_t addr = (uint64_t)(uintptr_t)(isr_stubs + v * ISR_STUB_SIZE);
		idt[v].offset_low = (uint16_t)addr;
		idt[v].selector = SEL_CODE64;
		idt[v].ist = 0;
		idt[v].type_attr = IDT_INTERRUPT_GATE;
		idt[v].offset_mid = (uint16_t)(addr >> 16);
		idt[v].offset_high = (uint32_t)(addr >> 32);
		idt[v].reserved = 0;
	}
	__asm__ volatile("lidt %0" : : "m"(*(const char (*)[10])idt_desc));
}

void set_interrupt_handler(unsigned vector, interrupt_handler handler)
{
	if (vector < IDT_VECTORS)
		handlers[vector] = handler;
}

/* Called by isr_common (start.S) for every interrupt and exception. */
void isr_dispatch(struct isr_frame *frame);
void isr_dispatch(struct isr_frame *frame)
{
	unsigned vector = (unsigned)frame->vector;
	if (vector < IDT_VECTORS && handlers[vector]) {
		handlers[vector](frame);
		return;
	}
	if (vector < 32)
		printf("guest: exception %u at rip 0x%lx\n", vector, frame->rip);
	else
		printf("guest: unexpected interrupt %u at rip 0x%lx\n", vector, frame->rip);
	guest_reset();
}

/* ---- Start and end ---- */
void runtime_init(void);
void runtime_init(void)
{
	serial_init();
	idt_init();
}

void guest_reset(void)
{
	cli();
	for (int i = 0; i < SERIAL_POLL_LIMIT; i++)
		if (inb(COM1_BASE + UART_LSR) & UART_LSR_TEMT)
			break;
	outb(I8042_COMMAND, I8042_RESET);
	halt_forever();
	__builtin_unreachable();
}

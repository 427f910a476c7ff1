/*
 * The freestanding runtime of the bare-metal test guests: COM1 output,
 * printf-style formatting, port I/O, MMIO, CPU helpers, interrupt handlers
 * and the i8042 reset. A guest is one C file defining guest_main().
 */
#ifndef GUEST_H
#define GUEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

/* ---- What a guest provides ---- */
void guest_main(void);

/* ---- Ports and addresses of the PC platform ---- */
#define COM1_BASE 0x3f8		/* first 16550 UART */
#define UART_THR 0		/* transmit holding register (write) */
#define UART_IER 1		/* interrupt enable register */
#define UART_IIR 2		/* interrupt identification register (read) */
#define UART_LCR 3		/* line control register */
#define UART_MCR 4		/* modem control register */
#define UART_LSR 5		/* line status register */
#define UART_LSR_THRE 0x20	/* LSR bit 5: the transmit holding register is empty */
#define UART_LSR_TEMT 0x40	/* LSR bit 6: the transmitter is idle */
#define I8042_COMMAND 0x64	/* i8042 command port */
#define I8042_RESET 0xfe	/* i8042 command: pulse the CPU reset line */
#define LAPIC_BASE 0xfee00000UL	/* the local APIC's xAPIC MMIO page */
#define IOAPIC_BASE 0xfec00000UL
#define PIT_CH0_DATA 0x40	/* 8254 channel 0 counter (IRQ 0) */
#define PIT_COMMAND 0x43	/* 8254 mode/command register */
#define PIT_CH0_MODE2_LOHI 0x34	/* channel 0, lobyte/hibyte, mode 2 (rate generator), binary */
#define PIT_CH0_MODE0_LOHI 0x30	/* channel 0, lobyte/hibyte, mode 0 (interrupt on terminal count, once), binary */
#define PIT_CH0_LATCH 0x00	/* channel 0, counter latch command */
#define PIT_HZ 1193182		/* the 8254's input clock */

/* ---- Port I/O ---- */
static inline void outb(uint16_t port, uint8_t value) { __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t value) { __asm__ volatile("outw %0, %1" : : "a"(value), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t value) { __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* ---- MMIO: one access of exactly the named width (inline asm, never split or merged) ---- */
static inline uint8_t mmio_read8(uintptr_t a) { uint8_t v; __asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory"); return v; }
static inline uint16_t mmio_read16(uintptr_t a) { uint16_t v; __asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline uint32_t mmio_read32(uintptr_t a) { uint32_t v; __asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline uint64_t mmio_read64(uintptr_t a) { uint64_t v; __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
static inline void mmio_write8(uintptr_t a, uint8_t v) { __asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(a) : "memory"); }
static inline void mmio_write16(uintptr_t a, uint16_t v) { __asm__ volatile("movw %0, (%1)" : : "r"(v), "r"(a) : "memory"); }
static inline void mmio_write32(uintptr_t a, uint32_t v) { __asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(a) : "memory"); }
static inline void mmio_write64(uintptr_t a, uint64_t v) { __asm__ volatile("movq %0, (%1)" : : "r"(v), "r"(a) : "memory"); }

/* ---- CPU ---- */
static inline void cli(void) { __asm__ volatile("cli" : : : "memory"); }
static inline void sti(void) { __asm__ volatile("sti" : : : "memory"); }
/* Enables interrupts and halts in one go: the sti shadow lets no interrupt in before hlt. */
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" : : : "memory"); }
static inline void cpu_relax(void) { __asm__ volatile("pause" : : : "memory"); }
static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}
/* rdtsc that neither starts before the code ahead of it has finished nor lets the code after it start early. */
static inline uint64_t rdtsc_fenced(void)
{
	__asm__ volatile("lfence" : : : "memory");
	uint64_t t = rdtsc();
	__asm__ volatile("lfence" : : : "memory");
	return t;
}
static inline void cpuid(uint32_t leaf, uint32_t subleaf, uint32_t *a, uint32_t *b, uint32_t *c, uint32_t *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(subleaf));
}
static inline uint64_t read_cr3(void) { uint64_t v; __asm__ volatile("mov %%cr3, %0" : "=r"(v)); return v; }
/* Atomically adds 'value' to '*p' with lock xadd and returns the old value. */
static inline uint32_t lock_xadd32(volatile uint32_t *p, uint32_t value)
{
	__asm__ volatile("lock xaddl %0, %1" : "+r"(value), "+m"(*p) : : "memory");
	return value;
}
static inline void halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt" : : : "memory");
}

/* ---- Interrupts ---- */
/* The stack at isr_dispatch: what isr_common (start.S) pushed, then the CPU's frame. */
struct isr_frame {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error_code;
	uint64_t rip, cs, rflags, rsp, ss;
};
typedef void (*interrupt_handler)(struct isr_frame *frame);
/* Routes 'vector' to 'handler' (NULL: back to the default, which prints and resets). */
void set_interrupt_handler(unsigned vector, interrupt_handler handler);
extern const char idt_desc[];	/* the runtime IDT's descriptor, for lidt on an AP */
extern const char gdt[];	/* the runtime GDT (selectors SEL_*) */

/* ---- Output ---- */
void serial_putc(char c);
void serial_write(const char *s, size_t n);
void puts_nonl(const char *s);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);

/* ---- TSC rate (common/tsc.c) ---- */
/* What tsc_hz() assumes when nothing tells the rate: a high guess, so waits only get longer. */
#define TSC_HZ_FALLBACK 4000000000ULL
/*
 * The TSC's rate in Hz, or 0 when nothing gives it. In this order: CPUID 0x15
 * (TSC/crystal ratio), the hypervisor's TSC leaf 0x40000010, 50 ms counted on
 * PIT channel 0, CPUID 0x16 (the nominal base clock, which need not be the
 * TSC's). *source, when source is not NULL, names the one used: "cpuid-0x15",
 * "cpuid-0x40000010", "pit", "cpuid-0x16" or "none". Leaves PIT channel 0 in
 * mode 0 (one interrupt, 55 ms later) when it measured.
 */
uint64_t tsc_hz_detect(const char **source);
/* tsc_hz_detect(), or TSC_HZ_FALLBACK when it gives 0. */
uint64_t tsc_hz(void);

/* Sorts v[0..n) ascending (common/sort.c; for medians of timing samples). */
void sort_u64(uint64_t *v, uint32_t n);

/* ---- Memory ---- */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

/* ---- The end ---- */
/* Waits for COM1 to drain, resets the machine through the i8042, then cli; hlt forever. */
__attribute__((noreturn)) void guest_reset(void);

/* Boot information saved by start.S. */
extern uint64_t boot_zero_page;		/* rsi at the 64-bit entry (the Linux zero page) */
extern uint64_t boot_start_info;	/* ebx at the PVH entry (struct hvm_start_info) */
extern uint32_t boot_protocol;		/* 1 = 64-bit entry, 2 = PVH entry */

#endif

/*
 * The TSC's rate, for guests that time with it (smp, pit, the bench guests).
 * Its own file in libguest.a, so only the guests that call it carry it.
 *
 * The measurement counts PIT channel 0 through latched reads (port 0x43,
 * then 0x40 twice): channel 0 is the PIT's under every VMM here, KVM's
 * in-kernel PIT included. Channel 2's gate and OUT bits are in port 0x61,
 * which is the PIT's only where the VMM emulates it (KVM only with
 * KVM_PIT_SPEAKER_DUMMY); an unclaimed 0x61 reads 0xff, "done" at once.
 */
#include "guest.h"

#define CALIBRATE_MS 50		/* long enough that one port exit (~10-40 us) is noise */
#define CALIBRATE_READS 1000000	/* bound on the latched reads of one calibration */
#define NO_PIT_READS 1000	/* this many reads without a tick: no PIT (an unclaimed port reads 0xffff) */
#define MIN_PLAUSIBLE_HZ 100000000ULL	/* below 100 MHz the measurement is garbage */
#define CPUID_HV_BASE 0x40000000	/* EAX: the hypervisor's highest leaf */
#define CPUID_HV_TSC_KHZ 0x40000010	/* EAX: TSC rate in kHz (VMware's leaf, offered by some VMMs) */
#define CPUID_HV_END 0x40000100	/* a larger "highest leaf" is not a hypervisor range */

static uint16_t pit_ch0_count(void)
{
	outb(PIT_COMMAND, PIT_CH0_LATCH);
	uint8_t lo = inb(PIT_CH0_DATA);
	uint8_t hi = inb(PIT_CH0_DATA);
	return (uint16_t)(lo | (hi << 8));
}

/* Counts PIT ticks (1.193182 MHz) against TSC cycles for CALIBRATE_MS; 0 if the PIT does not count. */
static uint64_t pit_calibrate_tsc(void)
{
	const uint32_t want = PIT_HZ / 1000 * CALIBRATE_MS;
	outb(PIT_COMMAND, PIT_CH0_MODE2_LOHI);
	outb(PIT_CH0_DATA, 0);	/* reload 0 = 65536 ticks (55 ms) between wraps */
	outb(PIT_CH0_DATA, 0);
	uint16_t prev = pit_ch0_count();
	uint64_t start = rdtsc_fenced();
	uint32_t ticks = 0;
	uint64_t cycles = 0;
	for (uint32_t i = 0; i < CALIBRATE_READS && ticks < want; i++) {
		uint16_t now = pit_ch0_count();
		ticks += (uint16_t)(prev - now);	/* counts down; a read every few us never misses a wrap */
		prev = now;
		cycles = rdtsc_fenced() - start;
		if (ticks == 0 && i >= NO_PIT_READS)
			break;
	}
	/* Leave channel 0 quiet: one shot, terminal count once, no periodic IRQ 0. */
	outb(PIT_COMMAND, PIT_CH0_MODE0_LOHI);
	outb(PIT_CH0_DATA, 0xff);
	outb(PIT_CH0_DATA, 0xff);
	if (ticks < want)
		return 0;
	uint64_t hz = cycles * PIT_HZ / ticks;
	return hz >= MIN_PLAUSIBLE_HZ ? hz : 0;
}

uint64_t tsc_hz_detect(const char **source)
{
	const char *dummy;
	if (!source)
		source = &dummy;
	uint32_t a, b, c, d, max, hvmax;
	cpuid(0, 0, &max, &b, &c, &d);
	if (max >= 0x15) {
		cpuid(0x15, 0, &a, &b, &c, &d);
		if (a && b && c) {
			*source = "cpuid-0x15";
			return (uint64_t)c * b / a;
		}
	}
	cpuid(CPUID_HV_BASE, 0, &hvmax, &b, &c, &d);
	if (hvmax >= CPUID_HV_TSC_KHZ && hvmax < CPUID_HV_END) {
		cpuid(CPUID_HV_TSC_KHZ, 0, &a, &b, &c, &d);
		if (a) {
			*source = "cpuid-0x40000010";
			return (uint64_t)a * 1000;
		}
	}
	uint64_t hz = pit_calibrate_tsc();
	if (hz) {
		*source = "pit";
		return hz;
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, &a, &b, &c, &d);
		if (a & 0xffff) {
			*source = "cpuid-0x16";
			return (uint64_t)(a & 0xffff) * 1000000;
		}
	}
	*source = "none";
	return 0;
}

uint64_t tsc_hz(void)
{
	uint64_t hz = tsc_hz_detect(NULL);
	return hz ? hz : TSC_HZ_FALLBACK;
}

/*
 * cmos: reads the MC146818 RTC and the memory size from CMOS.
 *
 *   cmos: 2026-11-26 08:15:42 (bcd, 24h)
 *   cmos: mem above 16M: 0x700
 *
 * The time is read after UIP (register A bit 7) is clear, twice until two
 * reads agree; BCD is converted when register B bit 2 is clear, 12-hour
 * values when bit 1 is clear. The second line is registers 0x34 (low) and
 * 0x35 (high): RAM above 16 MiB in 64 KiB units.
 */
#include "guest.h"

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define RTC_SECONDS 0x00
#define RTC_MINUTES 0x02
#define RTC_HOURS 0x04
#define RTC_DAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_CENTURY 0x32
#define CMOS_MEM_ABOVE_16M_LOW 0x34
#define CMOS_MEM_ABOVE_16M_HIGH 0x35
#define REG_A_UIP 0x80		/* an update is in progress */
#define REG_B_BINARY 0x04	/* data mode: binary, not BCD */
#define REG_B_24H 0x02		/* hour format: 24-hour */
#define HOUR_PM 0x80		/* in 12-hour mode */

struct rtc {
	uint8_t sec, min, hour, day, mon, year, century;
};

static uint8_t cmos_read(uint8_t reg)
{
	outb(CMOS_INDEX, reg);
	return inb(CMOS_DATA);
}

static void rtc_read(struct rtc *t)
{
	for (int i = 0; i < 100000 && (cmos_read(RTC_REG_A) & REG_A_UIP); i++)
		cpu_relax();
	t->sec = cmos_read(RTC_SECONDS);
	t->min = cmos_read(RTC_MINUTES);
	t->hour = cmos_read(RTC_HOURS);
	t->day = cmos_read(RTC_DAY);
	t->mon = cmos_read(RTC_MONTH);
	t->year = cmos_read(RTC_YEAR);
	t->century = cmos_read(RTC_CENTURY);
}

static unsigned bcd(uint8_t v) { return (v >> 4) * 10 + (v & 0x0f); }

void guest_main(void)
{
	struct rtc t, again;
	rtc_read(&t);
	for (int i = 0; i < 10; i++) {
		rtc_read(&again);
		if (again.sec == t.sec && again.min == t.min && again.hour == t.hour && again.day == t.day &&
		    again.mon == t.mon && again.year == t.year && again.century == t.century)
			break;
		t = again;
	}
	uint8_t b = cmos_read(RTC_REG_B);
	int binary = (b & REG_B_BINARY) != 0;
	int h24 = (b & REG_B_24H) != 0;
	int pm = !h24 && (t.hour & HOUR_PM);
	uint8_t hour_raw = h24 ? t.hour : (uint8_t)(t.hour & ~HOUR_PM);
	unsigned sec = binary ? t.sec : bcd(t.sec);
	unsigned min = binary ? t.min : bcd(t.min);
	unsigned hour = binary ? hour_raw : bcd(hour_raw);
	unsigned day = binary ? t.day : bcd(t.day);
	unsigned mon = binary ? t.mon : bcd(t.mon);
	unsigned year = binary ? t.year : bcd(t.year);
	unsigned century = binary ? t.century : bcd(t.century);
	if (!h24)
		hour = (hour % 12) + (pm ? 12 : 0);
	if (century == 0 || century > 99)
		century = 20; /* no century register */

	printf("cmos: %04u-%02u-%02u %02u:%02u:%02u (%s, %s)\n", century * 100 + year, mon, day, hour, min, sec,
	       binary ? "binary" : "bcd", h24 ? "24h" : "12h");
	unsigned mem = cmos_read(CMOS_MEM_ABOVE_16M_LOW) | (unsigned)cmos_read(CMOS_MEM_ABOVE_16M_HIGH) << 8;
	printf("cmos: mem above 16M: 0x%x\n", mem);
}
